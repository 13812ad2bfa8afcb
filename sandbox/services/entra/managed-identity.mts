// Emulated managed identity endpoints of the ISV's own compute (docs/azure-behaviour.md §7.1, §7.2), on one plain
// HTTP port as both real ones are plain HTTP:
//   IMDS         GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…  + `Metadata: true`
//                (reached through AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:<port>)
//   App Service  GET /msi/token?api-version=2019-08-01&resource=…  + `X-IDENTITY-HEADER: <secret>`
//                (reached through IDENTITY_ENDPOINT=http://127.0.0.1:<port>/msi/token, IDENTITY_HEADER)
// Both hand out tokens of the world's `isv.managedIdentity` (the ISV's timer job), from the
// sandbox's Entra, in the ISV tenant. A bare GET without `Metadata` (the SDK's IMDS probe) gets
// IMDS's 400, which is what tells a client that IMDS is there.
import { randomBytes } from "node:crypto";
import type { Reply, RouteContext, ServiceDef } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { KNOWN_RESOURCES } from "./service.mts";

export const IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token";
export const APP_SERVICE_TOKEN_PATH = "/msi/token";
const IMDS_API_VERSIONS = ["2018-02-01", "2019-08-01"];
const APP_SERVICE_API_VERSIONS = ["2019-08-01"];

const _norm = (r: string) => r.replace(/\/+$/, "").toLowerCase();
const KNOWN = new Set(KNOWN_RESOURCES.map(_norm));

/** IMDS error bodies are OAuth-style `{error, error_description}` (docs/azure-behaviour.md §7.1; texts as IMDS prints them where known). */
function _imdsError(status: number, error: string, description: string): Reply {
  return { status, body: { error, error_description: description } };
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
    const nowS = Math.floor(state.now() / 1000);
    // IMDS answers with strings only (docs/azure-behaviour.md §7.1).
    return {
      status: 200,
      body: {
        access_token: token,
        refresh_token: "",
        expires_in: String(Number(claims.exp) - nowS),
        expires_on: String(claims.exp),
        not_before: String(claims.nbf),
        resource,
        token_type: "Bearer",
        client_id: identity()!.clientId,
      },
    };
  };

  const appService = async (c: RouteContext): Promise<Reply> => {
    const secret = c.header("x-identity-header");
    // The exact status and text App Service gives for a wrong or missing header are unconfirmed → 401.
    if (secret !== identityHeader) {
      return { status: 401, body: { statusCode: 401, message: "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER." } };
    }
    const q = c.url.searchParams;
    const apiVersion = q.get("api-version");
    if (!apiVersion || !APP_SERVICE_API_VERSIONS.includes(apiVersion)) {
      return { status: 400, body: { statusCode: 400, message: `The api-version '${apiVersion ?? ""}' is not supported; use 2019-08-01.` } };
    }
    const bad = checkResource(q.get("resource")) ?? select(q);
    if (bad) return { status: bad.status, body: { statusCode: bad.status, message: (bad.body as { error_description: string }).error_description } };
    const resource = q.get("resource")!;
    const { token, claims } = await issue(resource, "app-service");
    // 2019-08-01: expires_on in epoch seconds, as a string; no expires_in.
    return {
      status: 200,
      body: { access_token: token, expires_on: String(claims.exp), resource, token_type: "Bearer", client_id: identity()!.clientId },
    };
  };

  const service: ServiceDef = {
    name: "managedIdentity",
    caseInsensitive: true,
    routes: [
      { method: "GET", path: IMDS_TOKEN_PATH, handler: imds },
      { method: "GET", path: APP_SERVICE_TOKEN_PATH, handler: appService },
    ],
    notFound: (c, allowed) => allowed.length
      ? { status: 405, headers: { Allow: allowed.join(", ") }, body: { error: "invalid_request", error_description: `${c.method} is not allowed here.` } }
      : _imdsError(404, "not_found", `The managed identity endpoint has no route ${c.method} ${c.url.pathname}.`),
    faultReply: (_c, status) => _imdsError(status, status === 429 ? "too_many_requests" : "server_error", `The service answered HTTP ${status} (injected fault).`),
  };
  return { service, identityHeader };
}
