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

export interface DimensionVerdict {
  dimension: string;
  /** Events the API accepted (or answered Duplicate: accepted earlier). */
  accepted: number;
  /** Events the API refused because it does not know the dimension for the plan. */
  invalid: number;
  /** The plan the last rejection was sent for. */
  planId?: string;
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
 * request of the intent with its id, when `records` hold it. Pure.
 */
export function dimensionVerdicts(records: AuditRecord[], customer: { subscriptionId: string; managedResourceGroup: string }): DimensionVerdict[] {
  const same = (r: AuditRecord) => isSameCustomer(r.customer, customer);
  const intents = new Map<string, AuditRecord>();
  for (const r of records) if (r.operation.endsWith(".intent") && typeof r.id === "string" && same(r)) intents.set(r.id, r);
  const verdicts = new Map<string, DimensionVerdict>();
  const count = (dimension: unknown, planId: unknown, status: unknown, body: unknown) => {
    if (typeof dimension !== "string" || dimension === "") return;
    const v = verdicts.get(dimension) ?? { dimension, accepted: 0, invalid: 0 };
    if (typeof status === "string" && answerMeaning(statusOf(status)).state === "accepted") v.accepted++;
    else if (_isInvalidDimension(status, body)) {
      v.invalid++;
      if (typeof planId === "string") v.planId = planId;
    }
    verdicts.set(dimension, v);
  };
  for (const r of records) {
    if (!same(r) || r.operation.endsWith(".intent") || !r.response) continue;
    const sent = (r.request ?? (typeof r.id === "string" ? intents.get(r.id)?.request : undefined))?.body as Record<string, unknown> | undefined;
    const answer = r.response.body as Record<string, unknown> | null;
    if (Array.isArray(sent?.request) && Array.isArray(answer?.result)) {
      (answer!.result as Record<string, unknown>[]).forEach((item, i) => {
        const event = (sent!.request as Record<string, unknown>[])[i] ?? {};
        count(item.dimension ?? event.dimension, item.planId ?? event.planId, item.status, item.error);
      });
    } else if (sent) {
      const result = Array.isArray(r.events) ? (r.events[0] as { status?: unknown } | undefined)?.status : undefined;
      count(sent.dimension, sent.planId, r.outcome ?? result ?? (r.response.status === 200 ? "Accepted" : undefined), answer);
    }
  }
  return [...verdicts.values()].sort((a, b) => a.dimension.localeCompare(b.dimension));
}
