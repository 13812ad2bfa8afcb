// Reading and acting on single ARM resources through `az rest` (ARM-relative URLs, so az's cloud
// and sign-in apply), with "not found" turned into ResourceNotFoundError: a vault, namespace or
// queue named on the command line that does not exist is an input error.
import { ArmError, AzError, ResourceNotFoundError } from "./errors.mts";
import type { ArmOptions } from "./arm.mts";

const NOT_FOUND_CODES = /^\((ResourceNotFound|ResourceGroupNotFound|ParentResourceNotFound|NotFound|SubscriptionNotFound)\)/;

/** True when az reported one of ARM's "does not exist" errors. */
export function isArmNotFound(error: unknown): boolean {
  return error instanceof AzError && NOT_FOUND_CODES.test(error.errorLine ?? "");
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
} & ArmOptions): Promise<unknown> {
  const rest = options.azRest ?? (await import("./az.mts")).rest;
  try {
    return await rest({ method: options.method, url: options.url, body: options.body, command: options.command, env: options.env });
  } catch (cause) {
    if (isArmNotFound(cause)) {
      throw new ResourceNotFoundError(`Cannot find ${options.what}: ${(cause as AzError).errorLine!.replace(NOT_FOUND_CODES, "").trim()}${options.hint ? ` (${options.hint})` : ""}`, { cause });
    }
    if (cause instanceof AzError) throw new ArmError(`Cannot ${options.method === "GET" ? "read" : "change"} ${options.what}: ${cause.errorLine ?? cause.message}`, { cause, detail: cause.detail });
    throw cause;
  }
}
