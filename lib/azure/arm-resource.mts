// Reading and acting on single ARM resources through `az rest` (ARM-relative URLs, so az's cloud
// and sign-in apply), with "not found" turned into ResourceNotFoundError: a vault, namespace or
// queue named on the command line that does not exist is an input error.
import { ArmError, AzError, ResourceNotFoundError } from "../core/errors.mts";
import type { ArmOptions } from "./managed-apps.mts";

const NOT_FOUND_CODES = ["ResourceNotFound", "ResourceGroupNotFound", "ParentResourceNotFound", "NotFound", "SubscriptionNotFound"];

/**
 * ARM's error code and message from az's error line: `(Code) message` (az's SDK-based commands) or
 * `Not Found({"error":{"code":…,"message":…}})` (az rest). Pure.
 */
export function parseAzArmError(line: string): { code?: string; message: string } {
  const sdk = /^\((\w+)\)\s*(.*)$/s.exec(line);
  if (sdk) return { code: sdk[1], message: sdk[2] };
  const rest = /^[^({]*\((\{.*\})\)\s*$/s.exec(line);
  if (rest) {
    try {
      const e = (JSON.parse(rest[1]) as { error?: { code?: string; message?: string } }).error;
      if (e?.code) return { code: e.code, message: e.message ?? line };
    } catch { /* not JSON after all */ }
  }
  return { message: line };
}

/** True when az reported one of ARM's "does not exist" errors. */
export function isArmNotFound(error: unknown): boolean {
  return error instanceof AzError && NOT_FOUND_CODES.includes(parseAzArmError(error.errorLine ?? "").code ?? "");
}

/** One `az rest` call; ARM's "not found" → ResourceNotFoundError naming `what`, other failures → ArmError. */
export async function armRequest(options: {
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE";
  url: string;
  body?: unknown;
  /** What the URL names, for messages: `Key Vault 'x' in <sub>/<mrg>`. */
  what: string;
  /** Extra words after a not-found message (what to check). */
  hint?: string;
  /** With `record`: the audit log's name for this call, e.g. `managedApp.listTokens`. */
  operation?: string;
} & ArmOptions): Promise<unknown> {
  const rest = options.azRest ?? (await import("./az.mts")).rest;
  const record = options.record && options.operation
    ? (outcome: { body?: unknown; error?: unknown }) => options.record!({
      operation: options.operation!,
      request: { method: options.method, url: options.url, ...(options.body !== undefined ? { body: options.body } : {}) },
      // az rest hides the status: an answer is a 2xx.
      ...("error" in outcome
        ? { error: { code: (outcome.error as { code?: string })?.code, message: String((outcome.error as Error)?.message ?? outcome.error).split("\n")[0] } }
        : { response: { status: 200, body: outcome.body ?? null } }),
    })
    : undefined;
  try {
    const answer = await rest({ method: options.method, url: options.url, body: options.body, command: options.command, env: options.env });
    await record?.({ body: answer });
    return answer;
  } catch (cause) {
    if (record && !(cause instanceof Error && cause.name === "AuditWriteError")) await record({ error: cause });
    if (isArmNotFound(cause)) {
      throw new ResourceNotFoundError(`Cannot find ${options.what}: ${parseAzArmError((cause as AzError).errorLine!).message}${options.hint ? ` (${options.hint})` : ""}`, { cause });
    }
    if (cause instanceof AzError) {
      const e = parseAzArmError(cause.errorLine ?? cause.message);
      // ARM answers 403 for a resource group that does not exist where the caller has no rights, too.
      const hint = e.code === "AuthorizationFailed"
        ? " (check the subscription and managed resource group; the signed-in user must be covered by the plan's authorizations)"
        : "";
      throw new ArmError(`Cannot ${options.method === "GET" ? "read" : "change"} ${options.what}: ${e.code ? `${e.code}: ` : ""}${e.message}${hint}`, { cause, detail: cause.detail });
    }
    throw cause;
  }
}

/**
 * The blob endpoint (`primaryEndpoints.blob`) of a storage account, or undefined when the account
 * does not exist (yet).
 */
export async function storageBlobEndpoint(o: { subscriptionId: string; resourceGroup: string; name: string } & ArmOptions): Promise<string | undefined> {
  const { subscriptionId, resourceGroup, name, ...options } = o;
  try {
    const account = await armRequest({
      ...options,
      method: "GET",
      url: `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Storage/storageAccounts/${name}?api-version=2025-06-01`,
      what: `storage account '${name}' in ${subscriptionId}/${resourceGroup}`,
    }) as { properties?: { primaryEndpoints?: { blob?: unknown } } };
    const blob = account?.properties?.primaryEndpoints?.blob;
    return typeof blob === "string" && blob !== "" ? blob : undefined;
  } catch (error) {
    if (error instanceof ResourceNotFoundError) return undefined;
    throw error;
  }
}
