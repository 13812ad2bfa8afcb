// Emulated Microsoft Graph, the little of it the clients of this suite call: `GET /v1.0/me`, the
// signed-in user (`az ad signed-in-user show`; docs/azure-behaviour.md §3.5). Its own HTTPS port,
// as graph.microsoft.com is its own host; tokens for `https://graph.microsoft.com` (or this
// service's own URL, which az asks for when a registered cloud names it) from the sandbox's Entra.
import * as jose from "jose";
import type { Reply, RouteContext, ServiceDef } from "../../core/http.mts";
import { BearerError } from "../../core/tokens.mts";
import type { SandboxContext } from "../../core/context.mts";

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

export function createGraphService(ctx: SandboxContext): ServiceDef {
  const { state, tokens } = ctx;

  const me = async (c: RouteContext): Promise<Reply> => {
    const now = state.now();
    let claims: jose.JWTPayload;
    try {
      claims = await tokens.verifyBearer(c.header("authorization"), [...GRAPH_AUDIENCES, ctx.endpoints.graph].filter(Boolean));
    } catch (err) {
      if (!(err instanceof BearerError)) throw err;
      if (err.code === "missing") return graphError(c, now, 401, "InvalidAuthenticationToken", "Access token is empty.");
      if (err.code === "expired") return graphError(c, now, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.");
      return graphError(c, now, 401, "InvalidAuthenticationToken", `Access token validation failure. ${err.message}`);
    }
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

  return {
    name: "graph",
    caseInsensitive: true,
    routes: [{ method: "GET", path: "/v1.0/me", handler: me }],
    notFound: (c, allowed) => allowed.length
      ? { ...graphError(c, state.now(), 405, "Request_BadRequest", `Specified HTTP method is not allowed for the request uri.`), headers: { Allow: allowed.join(", ") } }
      : graphError(c, state.now(), 400, "Request_BadRequest", `Invalid request: the sandbox's Microsoft Graph serves only GET /v1.0/me, not ${c.method} ${c.url.pathname}.`),
    faultReply: (c, status) => graphError(c, state.now(), status, status === 429 ? "TooManyRequests" : "ServiceNotAvailable", `The service answered HTTP ${status} (injected fault).`),
  };
}
