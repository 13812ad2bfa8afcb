// Emulated Microsoft Graph, the little of it the clients of this suite call: `GET /v1.0/me`, the
// signed-in user (`az ad signed-in-user show`; docs/azure-behaviour.md §3.5), and app registrations
// with their federated identity credentials and service principals as `az ad app`, `az ad app
// federated-credential` and `az ad sp` call them (docs/azure-behaviour.md §3.6; the objects live in
// sandbox/services/entra/applications.mts, which Entra's token endpoint reads). Its own HTTPS port,
// as graph.microsoft.com is its own host; tokens for `https://graph.microsoft.com` (or this
// service's own URL, which az asks for when a registered cloud names it) from the sandbox's Entra.
import * as jose from "jose";
import type { Reply, RouteContext, ServiceDef } from "../../core/http.mts";
import { BearerError } from "../../core/tokens.mts";
import { HttpReplyError, parseJsonObject } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { appDirectory, DirectoryError, type AppFic, type AppRegistration, type ServicePrincipal } from "../entra/applications.mts";

const METADATA = "https://graph.microsoft.com/v1.0/$metadata";

export const GRAPH_AUDIENCES = ["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"];

/** Graph's error body: `{"error":{"code","message","innerError":{date, request-id, client-request-id}}}`. */
function graphError(c: RouteContext, nowMs: number, status: number, code: string, message: string): Reply {
  const date = new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, "");
  return {
    status,
    headers: { "request-id": c.requestId, "client-request-id": c.header("client-request-id") ?? c.requestId },
    body: { error: { code, message, innerError: { date, "request-id": c.requestId, "client-request-id": c.header("client-request-id") ?? c.requestId } } },
  };
}

/**
 * The `$filter` forms az sends (docs/azure-behaviour.md §3.6): `appId eq '…'`, `displayName eq '…'`,
 * `startswith(displayName,'…')`, `identifierUris/any(s:s eq '…')`; anything else is a 400.
 */
function _filterOf(filter: string | null): ((o: { appId: string; displayName: string }) => boolean) | string {
  if (filter === null || filter.trim() === "") return () => true;
  const lit = "'((?:[^']|'')*)'";
  const unq = (v: string) => v.replace(/''/g, "'");
  let m = new RegExp(`^\\s*(appId|displayName)\\s+eq\\s+${lit}\\s*$`, "i").exec(filter);
  if (m) {
    const [field, value] = [m[1].toLowerCase(), unq(m[2])];
    return (o) => (field === "appid" ? o.appId.toLowerCase() === value.toLowerCase() : o.displayName === value);
  }
  m = new RegExp(`^\\s*startswith\\(\\s*displayName\\s*,\\s*${lit}\\s*\\)\\s*$`, "i").exec(filter);
  if (m) {
    const prefix = unq(m[1]).toLowerCase();
    return (o) => o.displayName.toLowerCase().startsWith(prefix);
  }
  // No app here has identifier URIs.
  if (/^\s*identifierUris\/any\(/i.test(filter)) return () => false;
  return `Invalid filter clause: the sandbox's Microsoft Graph does not support '${filter}'.`;
}

function _appView(a: AppRegistration, entity = false) {
  return {
    ...(entity ? { "@odata.context": `${METADATA}#applications/$entity` } : {}),
    id: a.id,
    appId: a.appId,
    displayName: a.displayName,
    createdDateTime: a.createdDateTime,
    signInAudience: a.signInAudience,
    publisherDomain: null,
    identifierUris: [],
    keyCredentials: [],
    passwordCredentials: [],
  };
}

function _ficView(a: AppRegistration, f: AppFic, entity = false) {
  return {
    ...(entity ? { "@odata.context": `${METADATA}#applications('${a.id}')/federatedIdentityCredentials/$entity` } : {}),
    id: f.id, name: f.name, issuer: f.issuer, subject: f.subject, description: f.description, audiences: [...f.audiences],
  };
}

function _spView(s: ServicePrincipal, entity = false) {
  return {
    ...(entity ? { "@odata.context": `${METADATA}#servicePrincipals/$entity` } : {}),
    id: s.id, appId: s.appId, displayName: s.displayName, servicePrincipalType: s.servicePrincipalType,
    appOwnerOrganizationId: s.tenantId, accountEnabled: true, servicePrincipalNames: [s.appId],
  };
}

export function createGraphService(ctx: SandboxContext): ServiceDef {
  const { state, tokens } = ctx;
  const directory = () => appDirectory(state);

  /** The caller's verified claims, or Graph's 401. */
  const authenticate = async (c: RouteContext): Promise<jose.JWTPayload> => {
    const now = state.now();
    try {
      return await tokens.verifyBearer(c.header("authorization"), [...GRAPH_AUDIENCES, ctx.endpoints.graph].filter(Boolean));
    } catch (err) {
      if (!(err instanceof BearerError)) throw err;
      if (err.code === "missing") throw new HttpReplyError(graphError(c, now, 401, "InvalidAuthenticationToken", "Access token is empty."));
      if (err.code === "expired") throw new HttpReplyError(graphError(c, now, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."));
      throw new HttpReplyError(graphError(c, now, 401, "InvalidAuthenticationToken", `Access token validation failure. ${err.message}`));
    }
  };

  /**
   * Directory writes and reads of app registrations: a user of the tenant (the ISV's operator,
   * who may register apps). The tenant is the token's `tid`: every object read or written is in it.
   */
  const userTenant = async (c: RouteContext): Promise<string> => {
    const claims = await authenticate(c);
    const user = state.users.get(String(claims.oid ?? ""));
    if (claims.idtyp !== "user" || !user) {
      throw new HttpReplyError(graphError(c, state.now(), 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."));
    }
    return String(claims.tid ?? "");
  };

  const ok = (c: RouteContext, status: number, body: unknown): Reply => ({ status, headers: { "request-id": c.requestId, "OData-Version": "4.0" }, body });
  const bad = (c: RouteContext, message: string) => graphError(c, state.now(), 400, "Request_BadRequest", message);
  const body = (c: RouteContext) => parseJsonObject(c, (reason) => bad(c, reason));
  /** Runs a handler; a DirectoryError becomes Graph's error body. */
  const route = (fn: (c: RouteContext) => Promise<Reply>) => async (c: RouteContext): Promise<Reply> => {
    try {
      return await fn(c);
    } catch (err) {
      if (err instanceof DirectoryError) return graphError(c, state.now(), err.status, err.code, err.message);
      throw err;
    }
  };

  /** `/applications/{id}` by object id, or `/applications(appId='{appId}')` by the alternate key. */
  const appOf = (c: RouteContext, tenantId: string, segment: string): AppRegistration => {
    const alt = /^applications\(appId='([^']*)'\)$/i.exec(segment);
    const app = alt ? directory().byAppId(alt[1], tenantId) : directory().byObjectId(segment, tenantId);
    if (!app) {
      throw new HttpReplyError(graphError(c, state.now(), 404, "Request_ResourceNotFound", `Resource '${alt ? alt[1] : segment}' does not exist or one of its queried reference-property objects are not present.`));
    }
    return app;
  };

  const me = async (c: RouteContext): Promise<Reply> => {
    const now = state.now();
    const claims = await authenticate(c);
    const user = state.users.get(String(claims.oid ?? ""));
    // /me needs a delegated (user) token; an application's token has no "me" (Graph: 400 BadRequest).
    if (claims.idtyp !== "user" || !user) {
      return graphError(c, now, 400, "BadRequest", "/me request is only valid with delegated authentication flow.");
    }
    return {
      status: 200,
      headers: { "request-id": c.requestId, "OData-Version": "4.0" },
      body: {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        businessPhones: [],
        displayName: user.displayName,
        givenName: null,
        jobTitle: null,
        mail: null,
        mobilePhone: null,
        officeLocation: null,
        preferredLanguage: null,
        surname: null,
        userPrincipalName: user.userPrincipalName,
        id: user.objectId,
      },
    };
  };

  const listApps = async (c: RouteContext): Promise<Reply> => {
    const tenantId = await userTenant(c);
    const filter = _filterOf(c.url.searchParams.get("$filter"));
    if (typeof filter === "string") return bad(c, filter);
    return ok(c, 200, { "@odata.context": `${METADATA}#applications`, value: directory().list(tenantId).filter(filter).map((a) => _appView(a)) });
  };

  const createApp = async (c: RouteContext): Promise<Reply> => {
    const tenantId = await userTenant(c);
    const b = body(c);
    return ok(c, 201, _appView(directory().createApp({ tenantId, displayName: b.displayName as string }), true));
  };

  const getApp = async (c: RouteContext): Promise<Reply> => ok(c, 200, _appView(appOf(c, await userTenant(c), c.params.id), true));

  const appFromParams = (c: RouteContext, tenantId: string) => appOf(c, tenantId, c.params.alt ?? c.params.id);

  const ficsRoute = (method: "GET" | "POST") => async (c: RouteContext): Promise<Reply> => {
    const app = appFromParams(c, await userTenant(c));
    if (method === "GET") return ok(c, 200, { "@odata.context": `${METADATA}#applications('${app.id}')/federatedIdentityCredentials`, value: app.fics.map((f) => _ficView(app, f)) });
    return ok(c, 201, _ficView(app, directory().addFic(app, body(c)), true));
  };

  const ficRoute = (method: "GET" | "PATCH" | "DELETE") => async (c: RouteContext): Promise<Reply> => {
    const app = appFromParams(c, await userTenant(c));
    const fic = directory().fic(app, c.params.fic);
    if (!fic) return graphError(c, state.now(), 404, "Request_ResourceNotFound", `Resource '${c.params.fic}' does not exist or one of its queried reference-property objects are not present.`);
    if (method === "GET") return ok(c, 200, _ficView(app, fic, true));
    // PATCH answers 204 No Content, as Graph's update of a federatedIdentityCredential does.
    if (method === "PATCH") directory().updateFic(app, fic, body(c));
    else directory().deleteFic(app, fic.id);
    return { status: 204, headers: { "request-id": c.requestId } };
  };

  const listSps = async (c: RouteContext): Promise<Reply> => {
    const tenantId = await userTenant(c);
    const filter = _filterOf(c.url.searchParams.get("$filter"));
    if (typeof filter === "string") return bad(c, filter);
    const sps = [...directory().servicePrincipals.values()].filter((s) => s.tenantId.toLowerCase() === tenantId.toLowerCase() && filter(s));
    return ok(c, 200, { "@odata.context": `${METADATA}#servicePrincipals`, value: sps.map((s) => _spView(s)) });
  };

  const createSp = async (c: RouteContext): Promise<Reply> => {
    const tenantId = await userTenant(c);
    const b = body(c);
    if (typeof b.appId !== "string" || b.appId === "") return bad(c, "Property appId is required.");
    return ok(c, 201, _spView(directory().createServicePrincipal({ appId: b.appId, tenantId }), true));
  };

  return {
    name: "graph",
    caseInsensitive: true,
    routes: [
      { method: "GET", path: "/v1.0/me", handler: route(me) },
      { method: "GET", path: "/v1.0/applications", handler: route(listApps) },
      { method: "POST", path: "/v1.0/applications", handler: route(createApp) },
      { method: "GET", path: "/v1.0/applications/:id", handler: route(getApp) },
      { method: "GET", path: "/v1.0/applications/:id/federatedIdentityCredentials", handler: route(ficsRoute("GET")) },
      { method: "POST", path: "/v1.0/applications/:id/federatedIdentityCredentials", handler: route(ficsRoute("POST")) },
      { method: "GET", path: "/v1.0/applications/:id/federatedIdentityCredentials/:fic", handler: route(ficRoute("GET")) },
      { method: "PATCH", path: "/v1.0/applications/:id/federatedIdentityCredentials/:fic", handler: route(ficRoute("PATCH")) },
      { method: "DELETE", path: "/v1.0/applications/:id/federatedIdentityCredentials/:fic", handler: route(ficRoute("DELETE")) },
      // The alternate key: /applications(appId='…')/federatedIdentityCredentials[/{id-or-name}].
      { method: "GET", path: "/v1.0/:alt/federatedIdentityCredentials", handler: route(ficsRoute("GET")) },
      { method: "POST", path: "/v1.0/:alt/federatedIdentityCredentials", handler: route(ficsRoute("POST")) },
      { method: "GET", path: "/v1.0/:alt/federatedIdentityCredentials/:fic", handler: route(ficRoute("GET")) },
      { method: "PATCH", path: "/v1.0/:alt/federatedIdentityCredentials/:fic", handler: route(ficRoute("PATCH")) },
      { method: "DELETE", path: "/v1.0/:alt/federatedIdentityCredentials/:fic", handler: route(ficRoute("DELETE")) },
      { method: "GET", path: "/v1.0/servicePrincipals", handler: route(listSps) },
      { method: "POST", path: "/v1.0/servicePrincipals", handler: route(createSp) },
    ],
    notFound: (c, allowed) => allowed.length
      ? { ...graphError(c, state.now(), 405, "Request_BadRequest", `Specified HTTP method is not allowed for the request uri.`), headers: { Allow: allowed.join(", ") } }
      : graphError(c, state.now(), 400, "Request_BadRequest", `Invalid request: the sandbox's Microsoft Graph serves /v1.0/me, /v1.0/applications (with federatedIdentityCredentials) and /v1.0/servicePrincipals, not ${c.method} ${c.url.pathname}.`),
    faultReply: (c, status) => graphError(c, state.now(), status, status === 429 ? "TooManyRequests" : "ServiceNotAvailable", `The service answered HTTP ${status} (injected fault).`),
  };
}
