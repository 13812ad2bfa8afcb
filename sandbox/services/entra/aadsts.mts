// Entra's token-endpoint errors: the AADSTS codes this emulator answers with, each with its
// HTTP status, OAuth `error` value and message (docs/azure-behaviour.md §2.6), and Entra's
// error body (trace and correlation ids, timestamp, error_uri).
import { randomUUID } from "node:crypto";
import type { Reply, RouteContext } from "../../core/http.mts";

export const MIN_RSA_MODULUS_BITS = 2048;

const DOC_WIF = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
const DOC_BREAKING_CHANGE = "https://learn.microsoft.com/entra/identity-platform/reference-breaking-changes#august-2024";
const DOC_CERT_CREDENTIALS = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials";
const NO_MATCH = "No matching federated identity record found for presented assertion";
const CHECK_FIC = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.";
const CHECK_FIC_SUBJECT = "Check your federated identity credential Subject, Audience and Issuer against the presented assertion.";
const WRONG_TENANT_HINT = "This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.";

// ---------------------------------------------------------------- the error factory

/** One AADSTS error: HTTP status, OAuth `error` value and message template (docs/azure-behaviour.md §2.6). */
const AADSTS = {
  7000218: { status: 400, error: "invalid_request", message: () => "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." },
  900144: { status: 400, error: "invalid_request", message: (name: string) => `The request body must contain the following parameter: '${name}'.` },
  901002: { status: 400, error: "invalid_request", message: () => "The 'resource' request parameter isn't supported." },
  1002012: {
    status: 400, error: "invalid_scope",
    message: (scope: string) => `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
  },
  700022: {
    status: 400, error: "invalid_scope",
    message: (scope: string) => `The provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${scope} is not valid.`,
  },
  90002: {
    status: 400, error: "invalid_tenant",
    message: (tenant: string) => `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  },
  700016: {
    status: 400, error: "unauthorized_client",
    message: (clientId: string, tenantName: string) => `Application with identifier '${clientId}' was not found in the directory '${tenantName}'. ${WRONG_TENANT_HINT}`,
  },
  // The text as Entra writes it for an app without a service principal in the tenant (unconfirmed HTTP status → 400).
  7000229: {
    status: 400, error: "invalid_client",
    message: (clientId: string, tenantId: string) => `The client application ${clientId} is missing service principal in the tenant ${tenantId}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
  },
  7000215: {
    status: 401, error: "invalid_client",
    message: (clientId: string) => `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
  },
  500011: {
    status: 400, error: "invalid_resource",
    message: (resource: string, tenantName: string) => `The resource principal named ${resource} was not found in the tenant named ${tenantName}. ${WRONG_TENANT_HINT}`,
  },
  50027: { status: 401, error: "invalid_client", message: (reason: string) => `Invalid JWT token. ${reason}` },
  700222: { status: 401, error: "invalid_client", message: () => "AAD-issued tokens may not be used for federated identity flows." },
  70023: {
    status: 401, error: "invalid_client",
    message: (iat: number, exp: number) => `External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00. Token issued at ${iat}. Token expires on ${exp}.`,
  },
  70021: {
    status: 401, error: "invalid_client",
    message: (iss: string, sub: string, aud: string) => `${NO_MATCH}. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${aud}'. ${DOC_WIF}`,
  },
  700211: { status: 401, error: "invalid_client", message: (iss: string) => `${NO_MATCH} issuer '${iss}'. ${CHECK_FIC} ${DOC_WIF}` },
  700212: { status: 401, error: "invalid_client", message: (aud: string) => `${NO_MATCH} audience '${aud}'. ${CHECK_FIC} ${DOC_WIF}` },
  700213: { status: 401, error: "invalid_client", message: (sub: string) => `${NO_MATCH} subject '${sub}'. ${CHECK_FIC_SUBJECT} ${DOC_WIF}` },
  7002138: {
    status: 401, error: "invalid_client",
    message: (sub: string) => `${NO_MATCH} subject '${sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. ${CHECK_FIC_SUBJECT} See breaking change notification and remediation at: ${DOC_BREAKING_CHANGE}.`,
  },
  50166: { status: 400, error: "invalid_request", message: () => "Request to External OIDC endpoint failed." },
  7000272: {
    status: 401, error: "invalid_client",
    message: (kid: string, iss: string) => `The certificate with identifier ${kid} used to sign the federated credential could not be found in the metadata of identity provider ${iss}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
  },
  700027: { status: 401, error: "invalid_client", message: () => "Client assertion failed signature validation." },
  50032: {
    status: 401, error: "invalid_client",
    message: (kid: string, bits: number) => `WeakRsaKey: the RSA key with identifier ${kid} has ${bits} bits; keys used to sign assertions must have at least ${MIN_RSA_MODULUS_BITS} bits.`,
  },
  700024: {
    status: 401, error: "invalid_client",
    message: (nowMs: number, nbfS: number, expS: number) => `Client assertion is not within its valid time range. Current time: ${_dotNetTime(nowMs)}, assertion valid from ${_dotNetTime(nbfS * 1000)}, expiry time of assertion ${_dotNetTime(expS * 1000)}. Review the documentation at ${DOC_CERT_CREDENTIALS} .`,
  },
  900561: {
    status: 405, error: "invalid_request",
    message: (allowed: string, method: string) => `The endpoint only accepts ${allowed} requests. Received a ${method} request.`,
  },
} as const;

type AadstsCode = keyof typeof AADSTS;

/** Every AADSTS code this emulator can answer with (the product must explain each). */
export const EMULATED_AADSTS_CODES: readonly number[] = Object.keys(AADSTS).map(Number);
type MessageArgs<C extends AadstsCode> = Parameters<(typeof AADSTS)[C]["message"]>;

/** A failed token request; turned into Entra's error body by `errorReply`. */
export class AadstsError extends Error {
  readonly aadsts: AadstsCode;
  readonly status: number;
  readonly error: string;
  constructor(code: AadstsCode, message: string) {
    super(message);
    this.name = "AadstsError";
    this.aadsts = code;
    this.status = AADSTS[code].status;
    this.error = AADSTS[code].error;
  }
}

export function aadsts<C extends AadstsCode>(code: C, ...args: MessageArgs<C>): AadstsError {
  const template = AADSTS[code].message as (...a: MessageArgs<C>) => string;
  return new AadstsError(code, template(...args));
}

/** `2024-05-28T02:19:01.0000000Z`: the 7-digit fraction .NET prints (docs/azure-behaviour.md §2.6, 700024). */
function _dotNetTime(ms: number): string {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return String(ms / 1000);
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$10000Z");
}

/** `2025-04-22 01:01:11Z`, the timestamp format of Entra's error bodies. */
function _errorTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Entra echoes a caller's `client-request-id` (header or query) as the correlation id. */
export function correlationIdOf(rc: RouteContext): string {
  const given = rc.header("client-request-id") ?? rc.url.searchParams.get("client-request-id") ?? "";
  return GUID_RE.test(given) ? given.toLowerCase() : randomUUID();
}

export function traceHeaders(rc: RouteContext, correlationId: string): Record<string, string> {
  return {
    "Cache-Control": "no-store, no-cache",
    Pragma: "no-cache",
    "x-ms-request-id": rc.requestId,
    "client-request-id": correlationId,
  };
}

export function errorBody(rc: RouteContext, nowMs: number, error: string, description: string, codes: number[]): { headers: Record<string, string>; body: Record<string, unknown> } {
  const correlationId = correlationIdOf(rc);
  const timestamp = _errorTimestamp(nowMs);
  return {
    headers: traceHeaders(rc, correlationId),
    body: {
      error,
      error_description: `${description} Trace ID: ${rc.requestId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: codes,
      timestamp,
      trace_id: rc.requestId,
      correlation_id: correlationId,
      ...(codes.length ? { error_uri: `https://login.microsoftonline.com/error?code=${codes[0]}` } : {}),
    },
  };
}

export function errorReply(rc: RouteContext, nowMs: number, err: AadstsError): Reply {
  const { headers, body } = errorBody(rc, nowMs, err.error, `AADSTS${err.aadsts}: ${err.message}`, [err.aadsts]);
  return { status: err.status, headers, body };
}
