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

// A DNS name of two or more labels (contoso.com, contoso.onmicrosoft.com): how Entra names a tenant
// by one of its verified domains.
const DOMAIN_RE = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

/** True when `value` is a domain name such as contoso.com (a tenant's verified domain). */
export function isDomainName(value: unknown): value is string {
  return typeof value === "string" && DOMAIN_RE.test(value);
}

/** True when `value` names an Entra tenant: its id (GUID) or one of its verified domains. */
export function isTenantName(value: unknown): value is string {
  return isGuid(value) || isDomainName(value);
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

/** The largest quantity one event may carry unless a run says otherwise (`--max-quantity`). */
export const DEFAULT_MAX_QUANTITY = 1_000_000;

/**
 * Partner Center documents no length or character set for a metering dimension's ID: its
 * pages call it "the immutable identifier referenced while emitting usage events" (Microsoft
 * docs: azure-app-metered-billing, "Billing dimensions"; the Azure application and SaaS plan
 * pages, "Add a custom meter dimension"), and the metering API's OpenAPI spec has `dimension`
 * as a plain string (microsoft/commercial-marketplace-openapi, meteringapi.v1.json). The
 * neighbouring plan ID field takes "up to 50 lowercase alphanumeric characters, dashes, or
 * underscores" (azure-app-plans), which says nothing certain about dimension IDs. So only what
 * cannot be an ID is refused here: empty, control characters, or longer than this bound
 * (unconfirmed; far above 50, so that no real ID is ever refused; anything else the API
 * refuses as InvalidDimension, which is recorded). Command line and usage files share it.
 */
export const MAX_DIMENSION_ID_LENGTH = 256;

/**
 * What is wrong with a dimension id (already trimmed), or undefined when it can be one.
 * The phrase reads after the value: `dimension "…": <problem>`.
 */
export function dimensionProblem(value: string): string | undefined {
  const hint = "expected the dimension id from Partner Center";
  if (value === "") return `${hint} (non-empty)`;
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return `it holds control characters; ${hint}`;
  if (value.length > MAX_DIMENSION_ID_LENGTH) return `it is ${value.length} characters long, more than ${MAX_DIMENSION_ID_LENGTH}; ${hint}`;
  return undefined;
}

/**
 * Reads a quantity (text, or a number from JSON) and checks it: a finite decimal number
 * greater than 0 and at most `maxQuantity`. Returns the number, or the problem as a phrase
 * that reads after the value: `quantity "1,5": use a dot: 1.5`.
 *
 * @example
 * checkQuantity("20.5", { maxQuantity: 1_000_000 }) // { quantity: 20.5 }
 * checkQuantity("1e308", { maxQuantity: 1_000_000 }).problem // "above the ceiling of 1000000 …"
 */
export function checkQuantity(value: string | number, options: { maxQuantity?: number } = {}): { quantity: number; problem?: undefined } | { quantity?: undefined; problem: string } {
  const max = options.maxQuantity ?? DEFAULT_MAX_QUANTITY;
  let n: number;
  if (typeof value === "number") n = value;
  else {
    const v = value.trim();
    // A decimal comma (Excel in many locales): say how to write it rather than "not a number".
    if (/^[+]?\d+,\d+$/.test(v)) return { problem: `use a dot: ${v.replace(",", ".")}` };
    n = DECIMAL_RE.test(v) ? Number(v) : NaN;
  }
  if (Number.isNaN(n) || n <= 0) return { problem: "expected a decimal number greater than 0" };
  // Infinity here is a decimal too large for a double (1e999): above any ceiling.
  if (!(n <= max)) {
    return { problem: `above the ceiling of ${_plain(max)} per event (a unit mix-up?); pass --max-quantity to allow more` };
  }
  return { quantity: n };
}

/** Checks the quantity argument: a finite decimal number greater than 0, at most `maxQuantity` (default 1,000,000). */
export function parseQuantity(value: string | undefined, options: { maxQuantity?: number } = {}): number {
  const checked = checkQuantity(value ?? "", options);
  if (checked.problem !== undefined) throw new UsageError(`Cannot use quantity ${JSON.stringify(value ?? "")}: ${checked.problem}`);
  return checked.quantity;
}

/** Checks the --max-quantity argument: a finite decimal number greater than 0. */
export function parseMaxQuantity(value: string | undefined): number {
  const v = value?.trim() ?? "";
  const n = DECIMAL_RE.test(v) ? Number(v) : NaN;
  if (!(Number.isFinite(n) && n > 0)) {
    throw new UsageError(`Cannot use --max-quantity ${JSON.stringify(value ?? "")}: expected a decimal number greater than 0`);
  }
  return n;
}

/** Checks the dimension argument: the Partner Center dimension id (see dimensionProblem). */
export function parseDimension(value: string | undefined): string {
  const v = value?.trim() ?? "";
  const problem = dimensionProblem(v);
  if (problem !== undefined) throw new UsageError(`Cannot use dimension ${JSON.stringify(value ?? "")}: ${problem}`);
  return v;
}

/** A number as people write it, without exponent for the ceilings people pick (1000000, not 1e+6). */
function _plain(n: number): string {
  return Number.isInteger(n) && Math.abs(n) < 1e21 ? n.toFixed(0) : String(n);
}

/**
 * An integer option from `min` to `max`; `fallback` when it was not given.
 * @example parseIntOption("8", { name: "concurrency", min: 1, max: 64, fallback: 8 }) // 8
 */
export function parseIntOption(value: unknown, o: { name: string; min: number; max: number; fallback?: number }): number {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  const n = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= o.min && n <= o.max)) throw new UsageError(`Cannot use --${o.name} ${JSON.stringify(value)}: expected an integer from ${o.min} to ${o.max}`);
  return n;
}

/**
 * A duration option in hours and minutes (`3h`, `90m`, `1h30m`) from 0 to `maxMs`, in
 * milliseconds; `fallbackMs` when it was not given.
 * @example parseDurationOption("1h30m", { name: "warn-before", maxMs: 86_400_000, fallbackMs: 0 }) // 5_400_000
 */
export function parseDurationOption(value: unknown, o: { name: string; maxMs: number; fallbackMs: number }): number {
  if (value === undefined) return o.fallbackMs;
  const m = typeof value === "string" ? /^\s*(?:(\d{1,3})h)?(?:(\d{1,4})m)?\s*$/.exec(value) : null;
  const ms = m && (m[1] !== undefined || m[2] !== undefined) ? Number(m[1] ?? 0) * 3_600_000 + Number(m[2] ?? 0) * 60_000 : NaN;
  if (!(ms >= 0 && ms <= o.maxMs)) {
    throw new UsageError(`Cannot use --${o.name} ${JSON.stringify(value)}: expected hours and minutes such as 3h, 90m or 1h30m, at most ${o.maxMs / 3_600_000}h`);
  }
  return ms;
}
