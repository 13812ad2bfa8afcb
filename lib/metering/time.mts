// UTC hours as the Marketplace metering API counts them: the start of an hour, times as ISO
// 8601 without milliseconds, the API's 24-hour window, and the key of its duplicate rule (one
// event per resource, dimension and UTC hour; docs/azure-behaviour.md §1.5). Pure; it imports
// nothing, so the API client, the usage file, the ledger and the planner all build on it.

export const HOUR_MS = 3_600_000;
/** An event can be sent while `0 <= now - effectiveStartTime < 24 h` (docs/azure-behaviour.md §1.5). */
export const USAGE_WINDOW_MS = 24 * HOUR_MS;

/**
 * An instant as ISO 8601 UTC without milliseconds, the form the client sends.
 * @example isoSeconds(Date.parse("2024-05-01T13:45:10.123Z")) // "2024-05-01T13:45:10Z"
 */
export function isoSeconds(time: number | Date): string {
  const iso = new Date(+time).toISOString();
  // `YYYY-MM-DDTHH:MM:SS.mmmZ` for years 0–9999; a sliced copy is several times cheaper than a regex replace.
  return iso.length === 24 ? `${iso.slice(0, 19)}Z` : iso.replace(/\.\d{3}Z$/, "Z");
}

/** The start (epoch ms) of the UTC hour that holds `ms`. */
export function hourStartMs(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

// An instant as isoSeconds writes it (`2024-05-01T13:25:10Z`): its hour is a prefix.
const ISO_SECONDS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/**
 * The start of the UTC hour that holds `time` (any ISO 8601 with a zone): the hour bucket of the
 * API's duplicate rule.
 * @example hourOf("2024-05-01T15:30:00+02:00") // "2024-05-01T13:00:00Z"
 */
export function hourOf(time: string): string {
  // A checked row's time is in isoSeconds' form (every hours-ago row's is an hour start): no Date needed.
  if (ISO_SECONDS_RE.test(time)) return time.endsWith(":00:00Z") ? time : `${time.slice(0, 13)}:00:00Z`;
  return isoSeconds(hourStartMs(Date.parse(time)));
}

/**
 * Start of the UTC hour `hoursAgo` hours before `now`, as ISO 8601 without milliseconds.
 * @example effectiveStartTime({ hoursAgo: 1, now: Date.parse("2024-05-01T13:45:10Z") }) // "2024-05-01T12:00:00Z"
 */
export function effectiveStartTime(options: { hoursAgo: number; now?: Date | number }): string {
  if (!Number.isInteger(options.hoursAgo) || options.hoursAgo < 0) {
    throw new RangeError(`Cannot compute effectiveStartTime: hoursAgo must be a non-negative integer, got ${options.hoursAgo}`);
  }
  const nowMs = options.now === undefined ? Date.now() : +options.now;
  return isoSeconds(hourStartMs(nowMs) - options.hoursAgo * HOUR_MS);
}

/** Whether an event of time `timeMs` can be sent at `now`: not in the future, less than 24 hours old. */
export function isInUsageWindow(timeMs: number, now: number): boolean {
  const age = now - timeMs;
  return age >= 0 && age < USAGE_WINDOW_MS;
}

/** What the duplicate rule reads of an event. */
export interface UsageKeyParts {
  /** The usage resource id (billingDetails.resourceUsageId); any case. */
  resourceId: string;
  dimension: string;
  effectiveStartTime: string;
}

/**
 * The duplicate-rule key of an event: usage resource id (any case), dimension, UTC hour.
 * @example usageKey({ resourceId: "A1…", dimension: "cpu", effectiveStartTime: "2024-05-01T13:25:00Z" }) // "a1…|cpu|2024-05-01T13:00:00Z"
 */
export function usageKey(event: UsageKeyParts): string {
  return usageKeyPrefix(event) + hourOf(event.effectiveStartTime);
}

/** usageKey without the hour: `resourceId(lower)|dimension|`, for building many keys of one resource and dimension. */
export function usageKeyPrefix(event: Pick<UsageKeyParts, "resourceId" | "dimension">): string {
  return `${keyResource(event.resourceId)}|${event.dimension}|`;
}

/** The resource part of the keys of a usage resource id (ids compare without case). */
export function keyResource(resourceId: string): string {
  return resourceId.toLowerCase();
}

/** The resource part of a usage key: equal for every key of one resource. */
export function resourceOfKey(key: string): string {
  const bar = key.indexOf("|");
  return bar < 0 ? key : key.slice(0, bar);
}
