// Built-in Azure roles the suite grants to a customer's UAMI (1-connect-customer --grant) or
// names in its messages. Ids are Azure's built-in role definition ids (docs/azure-behaviour.md §4.3, §6.2).
import { UsageError } from "../core/errors.mts";

export const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
  "Reader": "acdd72a7-3c48-4ae5-b1e1-b0e1aa6e1b44",
  "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
  "Key Vault Crypto User": "12338af0-0e69-4776-bea7-57ae8d297424",
  "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
  "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
  "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
  "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
  "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
};

/** Roles only named in output (plan authorizations), never granted by this tool. */
const NAMED_ONLY: Readonly<Record<string, string>> = {
  "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
  "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
};

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A role given by name (case-insensitive; "Azure " may be left off the Service Bus roles) or by
 * role definition id.
 *
 * @example parseRole("service bus data sender") // { name: "Azure Service Bus Data Sender", id: "69a216fc-…" }
 */
export function parseRole(value: string): { name: string; id: string } {
  const v = value.trim();
  if (GUID_RE.test(v)) {
    const id = v.toLowerCase();
    return { name: roleName(id) ?? id, id };
  }
  const want = v.toLowerCase().replace(/\s+/g, " ");
  for (const [name, id] of Object.entries(BUILT_IN_ROLES)) {
    const n = name.toLowerCase();
    if (n === want || n === `azure ${want}`) return { name, id };
  }
  throw new UsageError(`Cannot grant role ${JSON.stringify(value)}: expected a role definition id or one of: ${Object.keys(BUILT_IN_ROLES).join(", ")}`);
}

/** The name of a known built-in role (from a role definition id or a full …/roleDefinitions/<id>). */
export function roleName(roleDefinitionId: string): string | undefined {
  const id = roleDefinitionId.split("/").pop()!.toLowerCase();
  return [...Object.entries(BUILT_IN_ROLES), ...Object.entries(NAMED_ONLY)].find(([, v]) => v === id)?.[0];
}
