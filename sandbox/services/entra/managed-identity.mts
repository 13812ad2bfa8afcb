// Emulated managed identity endpoints of the ISV's own compute (docs/azure-behaviour.md §7.1, §7.2), on one plain
// HTTP port as both real ones are plain HTTP:
//   IMDS         GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…  + `Metadata: true`
//                (reached through AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:<port>)
//   App Service  GET /msi/token?api-version=2019-08-01&resource=…  + `X-IDENTITY-HEADER: <secret>`
//                (reached through IDENTITY_ENDPOINT=http://127.0.0.1:<port>/msi/token, IDENTITY_HEADER)
//                and the legacy GET /msi/token?api-version=2017-09-01&resource=…  + `secret: <secret>`
//                (MSI_ENDPOINT=…/msi/token, MSI_SECRET = the same secret)
//   Cloud Shell  POST /oauth2/token, form `resource=…`, `Metadata: true`: the signed-in user's token
//                (MSI_ENDPOINT=http://127.0.0.1:<port>/oauth2/token, no MSI_SECRET)
// Both hand out tokens of the world's `isv.managedIdentity` (the ISV's timer job), from the
// sandbox's Entra, in the ISV tenant. A bare GET without `Metadata` (the SDK's IMDS probe) gets
// IMDS's 400, which is what tells a client that IMDS is there.
import { randomBytes } from "node:crypto";
import type { Reply, RouteContext, ServiceDef } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { KNOWN_RESOURCES } from "./service.mts";
import { existingJobRunner, type JobIdentity } from "../jobs/runner.mts";

export const IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token";
export const APP_SERVICE_TOKEN_PATH = "/msi/token";
/** Cloud Shell's MSI_ENDPOINT is `http://localhost:50342/oauth2/token`: the same path here. */
export const CLOUD_SHELL_TOKEN_PATH = "/oauth2/token";
const IMDS_API_VERSIONS = ["2018-02-01", "2019-08-01"];
/** 2019-08-01 (IDENTITY_ENDPOINT + X-IDENTITY-HEADER) and the legacy 2017-09-01 (MSI_ENDPOINT + `secret`). */
const APP_SERVICE_API_VERSIONS = ["2019-08-01", "2017-09-01"];
const LEGACY_APP_SERVICE_API = "2017-09-01";

const _norm = (r: string) => r.replace(/\/+$/, "").toLowerCase();
const KNOWN = new Set(KNOWN_RESOURCES.map(_norm));

/** IMDS error bodies are OAuth-style `{error, error_description}` (docs/azure-behaviour.md §7.1; texts as IMDS prints them where known). */
/** A token answer in IMDS's (and Cloud Shell's) form: every value a string. */
function _stringTokenBody(token: string, claims: Record<string, unknown>, resource: string | null, nowS: number): Record<string, string | null> {
  return {
    access_token: token,
    refresh_token: "",
    expires_in: String(Number(claims.exp) - nowS),
    expires_on: String(claims.exp),
    not_before: String(claims.nbf),
    resource,
    token_type: "Bearer",
  };
}

function _imdsError(status: number, error: string, description: string): Reply {
  return { status, body: { error, error_description: description } };
}

/**
 * `09/14/2017 14:05:10 +00:00`: how App Service on Linux writes 2017-09-01's `expires_on` (UTC, 24-hour;
 * Windows adds AM/PM). The 24-hour form is the one every client parses: az 2.45 knows only it.
 */
function _legacyExpiresOn(epochS: number): string {
  const d = new Date(epochS * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +00:00`;
}

export function createManagedIdentityService(ctx: SandboxContext): { service: ServiceDef; identityHeader: string } {
  const { state, tokens } = ctx;
  /** The secret App Service puts in IDENTITY_HEADER; made per sandbox run. */
  const identityHeader = randomBytes(16).toString("hex");

  const identity = () => state.seed.isv.managedIdentity;

  /** The ISV identity, unless a selector names another one. */
  const select = (q: URLSearchParams): Reply | undefined => {
    const mi = identity();
    if (!mi) return _imdsError(400, "invalid_request", "Identity not found");
    const selectors: Array<[string, string]> = [];
    for (const k of ["client_id", "object_id", "msi_res_id", "mi_res_id", "principal_id"]) {
      const v = q.get(k);
      if (v !== null) selectors.push([k, v]);
    }
    if (selectors.length > 1) return _imdsError(400, "invalid_request", "Only one of client_id, object_id and msi_res_id/mi_res_id may be given.");
    const [sel] = selectors;
    if (!sel) return undefined;
    const want = sel[0] === "client_id" ? mi.clientId : sel[0].endsWith("res_id") ? mi.resourceId : mi.principalId;
    if (sel[1].toLowerCase() !== want.toLowerCase()) return _imdsError(400, "invalid_request", "Identity not found");
    return undefined;
  };

  const issue = async (resource: string, grant: string) => {
    const mi = identity()!;
    return await tokens.issue({
      tenantId: state.seed.isv.tenantId,
      audience: resource,
      objectId: mi.principalId,
      appId: mi.clientId,
      idtyp: "app",
      lifetimeS: state.options.entra.managedIdentityTokenLifetimeS,
      grant,
      extraClaims: { xms_mirid: mi.resourceId },
    });
  };

  const checkResource = (resource: string | null): Reply | undefined => {
    if (!resource) return _imdsError(400, "invalid_request", "Required query variable 'resource' is missing");
    if (!KNOWN.has(_norm(resource))) {
      return _imdsError(400, "invalid_resource", `AADSTS500011: The resource principal named ${resource} was not found in the tenant named ${state.seed.isv.tenantName}.`);
    }
    return undefined;
  };

  const imds = async (c: RouteContext): Promise<Reply> => {
    // IMDS refuses requests without the Metadata header: the SSRF guard (and the SDK's probe answer).
    if ((c.header("metadata") ?? "").toLowerCase() !== "true") {
      return _imdsError(400, "invalid_request", "Required metadata header not specified");
    }
    if (c.header("x-forwarded-for")) return _imdsError(400, "invalid_request", "Request is forwarded; IMDS does not accept forwarded requests");
    const q = c.url.searchParams;
    const apiVersion = q.get("api-version");
    if (!apiVersion) return _imdsError(400, "invalid_request", "Required query variable 'api-version' is missing");
    if (!IMDS_API_VERSIONS.includes(apiVersion)) return _imdsError(400, "invalid_request", `Invalid api-version '${apiVersion}'`);
    const bad = checkResource(q.get("resource")) ?? select(q);
    if (bad) return bad;
    const resource = q.get("resource")!;
    const { token, claims } = await issue(resource, "imds");
    // IMDS answers with strings only (docs/azure-behaviour.md §7.1).
    return { status: 200, body: { ..._stringTokenBody(token, claims, resource, Math.floor(state.now() / 1000)), client_id: identity()!.clientId } };
  };

  /**
   * A Container Apps job replica (docs/azure-behaviour.md §7.2; its IDENTITY_HEADER names the execution): tokens for the job's
   * user-assigned identities only. The texts are App Service's, which Container Apps shares
   * (unconfirmed for jobs): an identity not attached is "Unable to load the proper Managed
   * Identity."; no selector with only user-assigned identities asks for a system-assigned one
   * the job does not have.
   */
  const containerAppsJob = async (c: RouteContext, identities: JobIdentity[]): Promise<Reply> => {
    const q = c.url.searchParams;
    const reply = (status: number, message: string): Reply => ({ status, body: { statusCode: status, message, correlationId: c.requestId } });
    if (q.get("api-version") !== "2019-08-01") return reply(400, `The api-version '${q.get("api-version") ?? ""}' is not supported; use 2019-08-01.`);
    const resourceBad = checkResource(q.get("resource"));
    if (resourceBad) return reply(resourceBad.status, (resourceBad.body as { error_description: string }).error_description);
    const selectors = ["client_id", "principal_id", "object_id", "mi_res_id"].filter((k) => q.has(k));
    if (selectors.length > 1) return reply(400, "Only one of client_id, principal_id/object_id and mi_res_id may be given.");
    if (!selectors.length) {
      return reply(400, "No system-assigned managed identity is enabled for this resource. With only user-assigned identities, you must include one of the optional properties client_id, principal_id or mi_res_id.");
    }
    const [k] = selectors;
    const v = q.get(k)!.toLowerCase();
    const mi = identities.find((i) => (k === "client_id" ? i.clientId : k === "mi_res_id" ? i.resourceId : i.principalId).toLowerCase() === v);
    if (!mi) return reply(400, "Unable to load the proper Managed Identity.");
    const resource = q.get("resource")!;
    const { token, claims } = await tokens.issue({
      tenantId: mi.tenantId,
      audience: resource,
      objectId: mi.principalId,
      appId: mi.clientId,
      idtyp: "app",
      lifetimeS: state.options.entra.managedIdentityTokenLifetimeS,
      grant: "container-apps-job",
      extraClaims: { xms_mirid: mi.resourceId },
    });
    return { status: 200, body: { access_token: token, expires_on: String(claims.exp), resource, token_type: "Bearer", client_id: mi.clientId } };
  };

  const appService = async (c: RouteContext): Promise<Reply> => {
    const q = c.url.searchParams;
    const apiVersion = q.get("api-version");
    const jobIdentities = existingJobRunner(state)?.identitiesForHeader(c.header("X-IDENTITY-HEADER") ?? "");
    if (jobIdentities) return await containerAppsJob(c, jobIdentities);
    const legacy = apiVersion === LEGACY_APP_SERVICE_API;
    // 2019-08-01 sends IDENTITY_HEADER as X-IDENTITY-HEADER; 2017-09-01 sends MSI_SECRET (the same value) as `secret`.
    const [headerName, envName] = legacy ? ["secret", "MSI_SECRET"] : ["X-IDENTITY-HEADER", "IDENTITY_HEADER"];
    const secret = c.header(headerName);
    // The exact status and text App Service gives for a wrong or missing header are unconfirmed → 401.
    if (secret !== identityHeader) {
      return { status: 401, body: { statusCode: 401, message: `The ${headerName} header is missing or does not match ${envName}.` } };
    }
    if (!apiVersion || !APP_SERVICE_API_VERSIONS.includes(apiVersion)) {
      return { status: 400, body: { statusCode: 400, message: `The api-version '${apiVersion ?? ""}' is not supported; use 2019-08-01.` } };
    }
    // 2017-09-01 names a user-assigned identity by `clientid` (no underscore).
    const selectors = new URLSearchParams(q);
    if (legacy && selectors.has("clientid")) {
      selectors.set("client_id", selectors.get("clientid")!);
      selectors.delete("clientid");
    }
    const bad = checkResource(q.get("resource")) ?? select(selectors);
    if (bad) return { status: bad.status, body: { statusCode: bad.status, message: (bad.body as { error_description: string }).error_description } };
    const resource = q.get("resource")!;
    const { token, claims } = await issue(resource, legacy ? "app-service-2017" : "app-service");
    if (legacy) {
      // 2017-09-01: expires_on is a date string, `MM/DD/YYYY HH:mm:ss +00:00` (docs/azure-behaviour.md §7.2).
      return { status: 200, body: { access_token: token, expires_on: _legacyExpiresOn(Number(claims.exp)), resource, token_type: "Bearer" } };
    }
    // 2019-08-01: expires_on in epoch seconds, as a string; no expires_in.
    return {
      status: 200,
      body: { access_token: token, expires_on: String(claims.exp), resource, token_type: "Bearer", client_id: identity()!.clientId },
    };
  };

  /**
   * Cloud Shell: a POST with the form body `resource=…` and `Metadata: true`, answered with a token
   * of the signed-in user (the portal's), not of a managed identity; no user-assigned identities.
   */
  const cloudShell = async (c: RouteContext): Promise<Reply> => {
    if ((c.header("metadata") ?? "").toLowerCase() !== "true") {
      return _imdsError(400, "invalid_request", "Required metadata header not specified");
    }
    const type = (c.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    const form = type === "application/x-www-form-urlencoded" || type === "" ? new URLSearchParams(c.text()) : new URLSearchParams();
    for (const k of ["client_id", "object_id", "msi_res_id", "mi_res_id", "principal_id"]) {
      if (form.has(k) || c.url.searchParams.has(k)) return _imdsError(400, "invalid_request", "Cloud Shell does not support user-assigned managed identities.");
    }
    const resource = form.get("resource") ?? c.url.searchParams.get("resource");
    const bad = checkResource(resource);
    if (bad) return bad;
    const user = state.seed.isv.user;
    const { token, claims } = await tokens.issue({
      tenantId: state.seed.isv.tenantId,
      audience: resource!,
      objectId: user.objectId,
      idtyp: "user",
      lifetimeS: state.options.entra.userTokenLifetimeS,
      grant: "cloud-shell",
      extraClaims: { upn: user.upn, unique_name: user.upn, name: user.displayName, scp: "user_impersonation", amr: ["pwd"], appid: "04b07795-8ddb-461a-bbee-02f9e1bf7b46", appidacr: "0" },
    });
    return { status: 200, body: _stringTokenBody(token, claims, resource, Math.floor(state.now() / 1000)) };
  };

  const service: ServiceDef = {
    name: "managedIdentity",
    caseInsensitive: true,
    routes: [
      { method: "GET", path: IMDS_TOKEN_PATH, handler: imds },
      { method: "GET", path: APP_SERVICE_TOKEN_PATH, handler: appService },
      { method: "POST", path: CLOUD_SHELL_TOKEN_PATH, handler: cloudShell },
    ],
    notFound: (c, allowed) => allowed.length
      ? { status: 405, headers: { Allow: allowed.join(", ") }, body: { error: "invalid_request", error_description: `${c.method} is not allowed here.` } }
      : _imdsError(404, "not_found", `The managed identity endpoint has no route ${c.method} ${c.url.pathname}.`),
    faultReply: (_c, status) => _imdsError(status, status === 429 ? "too_many_requests" : "server_error", `The service answered HTTP ${status} (injected fault).`),
  };
  return { service, identityHeader };
}
