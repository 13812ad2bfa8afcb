// Audit records for the data-plane and managed-app scripts: every request/response pair goes to
// audit.jsonl like the metering calls do, with secret values and tokens replaced by a note of
// their length and the token's decoded claims kept instead.
import { appendAuditRecord, buildAuditRecord } from "./log.mts";
import { summarizeToken } from "../identity/token-info.mts";

/** Keys whose values are secret values: replaced by `<redacted: N chars>`. */
const SECRET_VALUE_KEYS = new Set(["value", "client_secret", "password"]);
/** Keys whose values are tokens: replaced by `<key>Redacted` (their length) and `<key>Claims`. */
const TOKEN_KEYS = new Set(["access_token", "accesstoken", "refresh_token", "token", "id_token"]);

/** A copy of `value` with secret values and tokens replaced (tokens by their decoded claims). Pure. */
export function redactForAudit(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactForAudit);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const lower = k.toLowerCase();
    if (TOKEN_KEYS.has(lower) && typeof v === "string") {
      // The audit guard refuses any token-named key with a value, so the key itself changes.
      out[`${k}Redacted`] = `<redacted: ${v.length} chars>`;
      if (v) out[`${k}Claims`] = summarizeToken(v).claims;
    } else if (SECRET_VALUE_KEYS.has(lower) && typeof v === "string") {
      out[k] = `<redacted: ${v.length} chars>`;
    } else out[k] = redactForAudit(v);
  }
  return out;
}

export interface ExchangeRecord {
  operation: string;
  customer?: { subscriptionId: string; managedResourceGroup: string };
  request: { method: string; url: string; headers?: Record<string, string>; body?: unknown };
  response?: { status: number; requestId?: string; body?: unknown };
  tokenClaims?: Record<string, unknown>;
  error?: { code?: string; message: string };
  [extra: string]: unknown;
}

/** Appends one exchange, redacted, to the audit log. */
export async function auditExchange(options: { path: string; record: ExchangeRecord }): Promise<void> {
  const { request, response, ...rest } = options.record;
  await appendAuditRecord({
    path: options.path,
    record: buildAuditRecord({
      ...rest,
      request: { method: request.method, url: request.url, headers: request.headers ?? {}, body: redactForAudit(request.body ?? null) },
      ...(response ? { response: { status: response.status, requestId: response.requestId, body: redactForAudit(response.body ?? null) } } : {}),
    }),
  });
}
