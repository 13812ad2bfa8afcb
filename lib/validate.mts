// Validators for command-line arguments. Each returns the normalised value or throws a
// UsageError whose message names the argument and the rule, so a script can print it as is.
import { UsageError } from "./errors.mts";

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Azure resource group names: 1-90 chars of letters, digits, _ ( ) - . and Unicode letters
// and digits; not ending in a period.
const RESOURCE_GROUP_RE = /^[\p{L}\p{Nd}_().-]{1,90}$/u;
const DECIMAL_RE = /^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export const MAX_HOURS_AGO = 23;

/** True when `value` is a GUID in 8-4-4-4-12 hex form (any case). */
export function isGuid(value: unknown): value is string {
  return typeof value === "string" && GUID_RE.test(value);
}

/** True when `value` is a valid Azure resource group name. */
export function isResourceGroupName(value: unknown): value is string {
  return typeof value === "string" && RESOURCE_GROUP_RE.test(value) && !value.endsWith(".");
}

/**
 * Checks a subscription id argument.
 * @example parseSubscriptionId("0b1f6471-1bf0-4dda-aec3-cb9272f09590") // same string
 */
export function parseSubscriptionId(value: string | undefined, name = "subscription"): string {
  const v = value?.trim() ?? "";
  if (!isGuid(v)) {
    throw new UsageError(`Cannot use ${name} ${JSON.stringify(value ?? "")}: expected a subscription id (GUID like 00000000-0000-0000-0000-000000000000)`);
  }
  return v;
}

/**
 * Checks a resource group name argument (1-90 characters: letters, digits, _ ( ) - and .,
 * not ending in a period).
 */
export function parseResourceGroupName(value: string | undefined, name = "resource group"): string {
  const v = value ?? "";
  if (!isResourceGroupName(v)) {
    throw new UsageError(`Cannot use ${name} ${JSON.stringify(v)}: expected 1-90 letters, digits, underscores, parentheses, hyphens or periods, not ending in a period`);
  }
  return v;
}

/** Checks the hours-ago argument: an integer from 0 (this hour) to 23. */
export function parseHoursAgo(value: string | undefined): number {
  const v = value?.trim() ?? "";
  const n = /^\d{1,2}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= MAX_HOURS_AGO)) {
    throw new UsageError(`Cannot use hours-ago ${JSON.stringify(value ?? "")}: expected an integer from 0 (this hour) to ${MAX_HOURS_AGO}`);
  }
  return n;
}

/** Checks the quantity argument: a finite decimal number greater than 0. */
export function parseQuantity(value: string | undefined): number {
  const v = value?.trim() ?? "";
  const n = DECIMAL_RE.test(v) ? Number(v) : NaN;
  if (!(Number.isFinite(n) && n > 0)) {
    throw new UsageError(`Cannot use quantity ${JSON.stringify(value ?? "")}: expected a decimal number greater than 0`);
  }
  return n;
}

/** Checks the dimension argument: the Partner Center dimension id, non-empty, no control characters. */
export function parseDimension(value: string | undefined): string {
  const v = value?.trim() ?? "";
  // deno-lint-ignore no-control-regex
  if (v === "" || /[\u0000-\u001f\u007f]/.test(v)) {
    throw new UsageError(`Cannot use dimension ${JSON.stringify(value ?? "")}: expected the dimension id from Partner Center (non-empty)`);
  }
  return v;
}
