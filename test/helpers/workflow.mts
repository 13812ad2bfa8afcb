// The steps before any 3-* script: publisher defaults, ISV setup, connecting a customer; run as
// the real scripts, failing loudly when one does not succeed.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { SandboxHandle } from "../../sandbox/main.mts";
import { describe, runScript } from "./scripts.mts";

export async function runOk(name: string, args: string[], env: Record<string, string>, stdin?: string) {
  const r = await runScript(name, args, { env, stdin });
  if (r.code !== 0) throw new Error(`${name} ${args.join(" ")}: ${describe(r)}`);
  return r;
}

/** 0-add-defaults, 0-isv-setup and 1-connect-customer (with `grants`) for `customer`. */
export async function connectCustomer(env: Record<string, string>, customer: { subscriptionId: string; managedResourceGroup: string }, grants: string[] = []) {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup, ...grants.flatMap((g) => ["--grant", g])], env);
  return await customerConfig(env, customer);
}

/** The customer's entry in config.json. */
export async function customerConfig(env: Record<string, string>, customer: { subscriptionId: string; managedResourceGroup: string }) {
  const cfg = JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"));
  return cfg.customers[customer.subscriptionId][customer.managedResourceGroup] as Record<string, any>;
}

/** audit.jsonl as records, and its text. */
export async function readAudit(env: Record<string, string>) {
  const text = await readFile(join(env.METERING_DATA_DIR, "audit.jsonl"), "utf8").catch(() => "");
  return { text, records: text.split("\n").filter(Boolean).map((l) => JSON.parse(l)) as Array<Record<string, any>> };
}

/** Role assignments the sandbox holds for a principal. */
export function roleAssignmentsOf(sb: SandboxHandle, principalId: string) {
  return sb.state.ofType("Microsoft.Authorization/roleAssignments")
    .filter((r) => String(r.properties.principalId).toLowerCase() === principalId.toLowerCase())
    .map((r) => ({ id: r.id, scope: String(r.properties.scope), roleId: String(r.properties.roleDefinitionId).split("/").pop()!.toLowerCase() }));
}

export const JWT_RE = /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}/;
