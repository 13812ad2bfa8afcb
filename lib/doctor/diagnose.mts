// Pure comparisons the doctor reports in a person's words: how two strings that must be
// identical differ (Entra compares issuer, subject and audience byte for byte), what a JWKS
// entry lacks, and which meter dimensions the audit log shows as accepted or rejected.
import { answerMeaning, statusOf } from "../metering/status.mts";
import { isSameCustomer } from "../state/customers.mts";
import type { AuditRecord } from "../audit/log.mts";

/**
 * How `actual` differs from `expected`, or undefined when they are identical. Names the
 * differences that look like none: whitespace, a trailing slash, letter case.
 *
 * @example
 * describeMismatch({ expected: "https://x/public", actual: "https://x/public/" }) // "has a trailing slash"
 */
export function describeMismatch(options: { expected: string; actual: string }): string | undefined {
  const { expected, actual } = options;
  if (actual === expected) return undefined;
  if (actual.trim() !== actual && actual.trim() === expected) return "has whitespace around it";
  if (actual === `${expected}/`) return "has a trailing slash";
  if (`${actual}/` === expected) return "lacks the trailing slash";
  if (actual.toLowerCase() === expected.toLowerCase()) return "differs only in case";
  const bare = (s: string) => s.trim().replace(/\/+$/, "").toLowerCase();
  if (bare(actual) === bare(expected)) return "differs in case, whitespace or trailing slash";
  return "differs";
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** What a JWKS entry lacks or gets wrong for Entra: kty RSA, use sig, alg RS256, kid, base64url n and e. Pure. */
export function jwkProblems(key: unknown): string[] {
  if (typeof key !== "object" || key === null || Array.isArray(key)) return ["not a JSON object"];
  const k = key as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of ["kty", "use", "alg", "kid", "n", "e"]) if (typeof k[field] !== "string" || k[field] === "") problems.push(`no ${field}`);
  if (typeof k.kty === "string" && k.kty !== "RSA") problems.push(`kty is ${JSON.stringify(k.kty)}, expected "RSA"`);
  if (typeof k.use === "string" && k.use !== "sig") problems.push(`use is ${JSON.stringify(k.use)}, expected "sig"`);
  if (typeof k.alg === "string" && k.alg !== "RS256") problems.push(`alg is ${JSON.stringify(k.alg)}, expected "RS256"`);
  for (const field of ["n", "e"]) {
    if (typeof k[field] === "string" && k[field] !== "" && !B64URL.test(k[field] as string)) problems.push(`${field} is not unpadded base64url`);
  }
  return problems;
}

/**
 * A duration for a person: minutes under an hour, hours under two days, else days. Pure.
 *
 * @example formatAge(3 * 3600_000) // "3 h"
 */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "? h";
  if (ms < 3600_000) return `${Math.max(1, Math.round(ms / 60_000))} min`;
  if (ms < 48 * 3600_000) return `${Math.round(ms / 3600_000)} h`;
  return `${Math.round(ms / 86_400_000)} d`;
}

export interface DimensionVerdict {
  dimension: string;
  /** Events the API accepted (or answered Duplicate: accepted earlier). */
  accepted: number;
  /**
   * Events the API refused because it does not know the dimension for the plan, and that can
   * still be acted on: for an hour inside the window (when one is given) and sent after the
   * dimension's last accepted event.
   */
  invalid: number;
  /** The plan the last rejection was sent for. */
  planId?: string;
  /** When the first and the last of the `invalid` refusals were sent (ISO 8601). */
  firstInvalidAt?: string;
  lastInvalidAt?: string;
  /** Refusals that no longer count: their hour is past the window, or the dimension was accepted after them. */
  settled?: number;
}

const _isInvalidDimension = (status: unknown, body: unknown): boolean => {
  if (status === "InvalidDimension") return true;
  const b = body as { code?: unknown; details?: Array<{ target?: unknown; code?: unknown }>; error?: unknown } | null;
  const details = Array.isArray(b?.details) ? b!.details : [];
  return b?.code === "InvalidDimension" || details.some((d) => String(d?.target ?? "").toLowerCase() === "dimension" || d?.code === "InvalidDimension");
};

/**
 * Per dimension of one customer's usage records in the audit log: how many events the API
 * accepted and how many it refused as an unknown dimension. Reads single-event records
 * (request.body = the event) and batch records (request.body.request[], response.body.result[]).
 * An outcome without its request (the usual form: it refers to its intent by id) takes the
 * request of the intent with its id, when `records` hold it.
 * With `now` and `windowMs`, a refusal counts only while its event's hour is inside the window
 * (a corrected event can still be sent) and only when no accepted event of the same dimension
 * was sent after it; the others are `settled`. Pure.
 */
export function dimensionVerdicts(
  records: AuditRecord[],
  customer: { subscriptionId: string; managedResourceGroup: string },
  options: { now?: number; windowMs?: number } = {},
): DimensionVerdict[] {
  const same = (r: AuditRecord) => isSameCustomer(r.customer, customer);
  const intents = new Map<string, AuditRecord>();
  for (const r of records) if (r.operation.endsWith(".intent") && typeof r.id === "string" && same(r)) intents.set(r.id, r);
  const seen = new Map<string, { accepted: number; lastAcceptedMs: number; refusals: Array<{ sentMs: number; hourMs: number; planId?: string }> }>();
  const count = (r: AuditRecord, event: Record<string, unknown>, dimension: unknown, planId: unknown, status: unknown, body: unknown) => {
    if (typeof dimension !== "string" || dimension === "") return;
    const d = seen.get(dimension) ?? { accepted: 0, lastAcceptedMs: -Infinity, refusals: [] };
    const sentMs = Date.parse(r.time);
    if (typeof status === "string" && answerMeaning(statusOf(status)).state === "accepted") {
      d.accepted++;
      if (sentMs > d.lastAcceptedMs) d.lastAcceptedMs = sentMs;
    } else if (_isInvalidDimension(status, body)) {
      const hourMs = Date.parse(String(event.effectiveStartTime ?? ""));
      d.refusals.push({ sentMs, hourMs: Number.isFinite(hourMs) ? hourMs : sentMs, ...(typeof planId === "string" ? { planId } : {}) });
    }
    seen.set(dimension, d);
  };
  for (const r of records) {
    if (!same(r) || r.operation.endsWith(".intent") || !r.response) continue;
    const sent = (r.request ?? (typeof r.id === "string" ? intents.get(r.id)?.request : undefined))?.body as Record<string, unknown> | undefined;
    const answer = r.response.body as Record<string, unknown> | null;
    if (Array.isArray(sent?.request) && Array.isArray(answer?.result)) {
      (answer!.result as Record<string, unknown>[]).forEach((item, i) => {
        const event = (sent!.request as Record<string, unknown>[])[i] ?? {};
        count(r, event, item.dimension ?? event.dimension, item.planId ?? event.planId, item.status, item.error);
      });
    } else if (sent) {
      const result = Array.isArray(r.events) ? (r.events[0] as { status?: unknown } | undefined)?.status : undefined;
      count(r, sent, sent.dimension, sent.planId, r.outcome ?? result ?? (r.response.status === 200 ? "Accepted" : undefined), answer);
    }
  }
  const inWindow = (hourMs: number) => options.now === undefined || options.windowMs === undefined || options.now - hourMs < options.windowMs;
  const verdicts: DimensionVerdict[] = [];
  for (const [dimension, d] of seen) {
    const live = d.refusals.filter((x) => inWindow(x.hourMs) && !(x.sentMs <= d.lastAcceptedMs)).sort((a, b) => a.sentMs - b.sentMs);
    const v: DimensionVerdict = { dimension, accepted: d.accepted, invalid: live.length };
    const planId = (live.at(-1) ?? d.refusals.at(-1))?.planId;
    if (planId && d.refusals.length) v.planId = planId;
    const timed = live.filter((x) => Number.isFinite(x.sentMs));
    if (timed.length) {
      v.firstInvalidAt = new Date(timed[0].sentMs).toISOString();
      v.lastInvalidAt = new Date(timed.at(-1)!.sentMs).toISOString();
    }
    if (d.refusals.length > live.length) v.settled = d.refusals.length - live.length;
    verdicts.push(v);
  }
  return verdicts.sort((a, b) => a.dimension.localeCompare(b.dimension));
}
