// The machinery every emulated ARM resource provider shares: ARM's error factory and response
// headers, api-version checks (the tables are in api-versions.mts), bearer authentication, RBAC
// checks with ARM's messages, id helpers and the wire view of a stored resource. Route modules
// (the other arm/*.mts) build on `Arm`.
import { randomUUID } from "node:crypto";
import * as jose from "jose";
import { HttpReplyError, type InternalRequest, type Reply, type Route, type RouteContext } from "../../core/http.mts";
import { ROLE_DEFINITIONS, actionMatches, scopeContains, type ArmResource, type SandboxState, type Subscription } from "../../core/state.mts";
import { BearerError } from "../../core/tokens.mts";
import type { SandboxContext } from "../../core/context.mts";
import { API_VERSIONS, REGIONS } from "./api-versions.mts";

// ---------------------------------------------------------------- errors and replies

/** ARM's error body. */
export function armError(status: number, code: string, message: string, headers?: Record<string, string>, details?: unknown[]): Reply {
  return { status, headers, body: { error: { code, message, ...(details ? { details } : {}) } } };
}

/** Throws an ARM error reply. */
export function fail(status: number, code: string, message: string, headers?: Record<string, string>, details?: unknown[]): never {
  throw new HttpReplyError(armError(status, code, message, headers, details));
}

const STATUS_CODES: Record<number, string> = {
  400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 408: "RequestTimeout", 409: "Conflict",
  429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout",
};

/** An injected fault in ARM's shape. */
export function armFaultReply(_c: RouteContext, status: number): Reply {
  const code = STATUS_CODES[status] ?? `Http${status}`;
  const message = status === 429
    ? "The request is being throttled as the limit has been reached for operation type. Please retry after the time given in the Retry-After header."
    : `The service returned HTTP ${status} (injected by the sandbox).`;
  return armError(status, code, message);
}

/** Adds the headers ARM puts on every response. */
export function withArmHeaders(c: RouteContext, reply: Reply): Reply {
  const correlation = c.header("x-ms-correlation-request-id") ?? c.requestId;
  const headers: Record<string, string> = {
    "Cache-Control": "no-cache",
    Pragma: "no-cache",
    Expires: "-1",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "x-ms-request-id": c.requestId,
    "x-ms-correlation-request-id": correlation,
    "x-ms-routing-request-id": `WESTEUROPE:${new Date().toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z:${c.requestId}`,
    ...(reply.headers ?? {}),
  };
  const clientRequestId = c.header("x-ms-client-request-id");
  if (clientRequestId && c.header("x-ms-return-client-request-id") !== "false") headers["x-ms-client-request-id"] = clientRequestId;
  return { ...reply, headers };
}

export const ok = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({ status, body, headers });

// ---------------------------------------------------------------- ids and names

export const isGuid = (s: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/** ARM's normalised location: "West Europe" → "westeurope". */
const normLocation = (l: string): string => l.replace(/\s+/g, "").toLowerCase();

export const subscriptionScope = (sub: string): string => `/subscriptions/${sub}`;
export const rgId = (sub: string, rg: string): string => `/subscriptions/${sub}/resourceGroups/${rg}`;

/** decodeURIComponent that leaves a malformed escape as it is (a bad path is a 4xx, never a crash). */
export function decodeSegment(seg: string): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    return seg;
  }
}

/** `tags` of a request body: absent, or an object of strings (else 400 InvalidRequestContent). */
export function tagsOf(body: { tags?: unknown }): Record<string, string> | undefined {
  const t = body.tags;
  if (t === undefined || t === null) return undefined;
  if (typeof t !== "object" || Array.isArray(t) || !Object.values(t).every((v) => typeof v === "string")) {
    fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'tags must be an object of string values.'.");
  }
  return t as Record<string, string>;
}

/** The last segment of an ARM id. */
export const lastSegment = (id: string): string => id.replace(/\/+$/, "").split("/").pop() ?? "";

/** Fields of a stored resource that are the sandbox's own bookkeeping, never on the wire. */
const WIRE_FIELDS = ["id", "name", "type", "location", "kind", "managedBy", "sku", "plan", "identity", "tags", "etag", "zones", "properties", "systemData"];

/** The wire view of a stored resource. */
export function toWire(r: ArmResource): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of WIRE_FIELDS) if (r[k] !== undefined) out[k] = r[k];
  if (!out.name) out.name = lastSegment(r.id);
  return out;
}

export function systemData(createdBy: Caller | undefined, atMs: number, prev?: Record<string, unknown>): Record<string, unknown> {
  const at = new Date(atMs).toISOString();
  const by = createdBy?.displayName ?? "";
  const byType = createdBy?.idtyp === "app" ? "Application" : "User";
  return prev
    ? { ...prev, lastModifiedBy: by, lastModifiedByType: byType, lastModifiedAt: at }
    : { createdBy: by, createdByType: byType, createdAt: at, lastModifiedBy: by, lastModifiedByType: byType, lastModifiedAt: at };
}

// ---------------------------------------------------------------- the caller

export interface Caller {
  oid: string;
  tid: string;
  idtyp: "app" | "user";
  /** upn for users, appid for applications: what ARM shows in systemData. */
  displayName: string;
  claims: jose.JWTPayload;
}

export interface ArmCall {
  c: RouteContext;
  p: Record<string, string>;
  caller: Caller;
  apiVersion: string;
  /** The subscription named by `:subscriptionId`, when the route has one. */
  sub: Subscription;
  /** The JSON body ({} when empty); malformed JSON → 400 InvalidRequestContent. */
  body<T = Record<string, unknown>>(): T;
}

export interface ArmRouteSpec {
  method: string;
  path: string;
  /** Full resource type, e.g. "Microsoft.ManagedIdentity/userAssignedIdentities": picks the api-versions. */
  type: string;
  /** Override of the api-versions of `type` (actions with their own list). */
  versions?: string[];
  handler: (a: ArmCall) => Reply | Promise<Reply>;
}

/** A Host header worth echoing in URLs: a DNS name or an IP literal, with an optional port. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const ARM_AUDIENCES = ["https://management.azure.com/", "https://management.core.windows.net/"];
const ARM_AUDIENCE_LIST = "'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'";

// ---------------------------------------------------------------- the shared provider toolkit

export class Arm {
  readonly ctx: SandboxContext;
  readonly state: SandboxState;
  /** Runs a request through ARM's own routes in-process (set by service.mts once the route table exists). */
  dispatch: (r: InternalRequest) => Promise<Reply> = () => Promise.reject(new Error("arm: dispatch is not set"));

  constructor(ctx: SandboxContext) {
    this.ctx = ctx;
    this.state = ctx.state;
  }

  /**
   * ARM's base URL as the client called it, for the URLs ARM hands back (Azure-AsyncOperation,
   * Location, nextLink): `https://management.azure.com` through the front (whose requests keep the
   * public Host), the listening address otherwise. Azure's own answers name the host called, and a
   * client behind a proxy can only follow a URL on a host its proxy serves.
   */
  baseUrlAsCalled(c: RouteContext): string {
    const host = c.header("host")?.trim();
    if (!host || !HOST_RE.test(host)) return this.ctx.endpoints.arm;
    return `https://${host.replace(/:443$/, "").toLowerCase()}`;
  }

  // ---- authentication

  private challenge(tenant: string, description: string): Record<string, string> {
    return { "WWW-Authenticate": `Bearer authorization_uri="${this.ctx.endpoints.entra}/${tenant}", error="invalid_token", error_description="${description}"` };
  }

  /** The tenant a 401 points at: the subscription's when the path names a known one, else the ISV's home tenant. */
  private challengeTenant(c: RouteContext): string {
    const m = /^\/subscriptions\/([^/]+)/i.exec(c.url.pathname);
    const sub = m ? this.state.subscriptions.get(m[1].toLowerCase()) : undefined;
    return sub?.tenantId ?? "common";
  }

  /** Verifies the bearer token the way ARM does, answering 401 with ARM's codes and messages. */
  async authenticate(c: RouteContext): Promise<Caller> {
    const header = c.header("authorization");
    const tenant = this.challengeTenant(c);
    if (!header) {
      fail(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
        this.challenge(tenant, "The authentication failed because of missing 'Authorization' header."));
    }
    let claims: jose.JWTPayload;
    try {
      claims = await this.ctx.tokens.verifyBearer(header, ARM_AUDIENCES);
    } catch (err) {
      if (!(err instanceof BearerError)) throw err;
      const h = this.challenge(tenant, "The access token is invalid.");
      let peek: jose.JWTPayload = {};
      try {
        peek = jose.decodeJwt(header.replace(/^Bearer\s+/i, ""));
      } catch { /* not a JWT at all */ }
      if (err.code === "malformed" && !/^Bearer\s/i.test(header.trim())) {
        fail(401, "AuthenticationFailedInvalidHeader", "Authentication failed. The 'Authorization' header is provided in an invalid format.",
          this.challenge(tenant, "The authentication failed because of invalid 'Authorization' header."));
      }
      if (err.code === "expired") {
        const exp = typeof peek.exp === "number" ? new Date(peek.exp * 1000) : new Date(0);
        fail(401, "ExpiredAuthenticationToken",
          `The access token expiry UTC time '${armTime(exp)}' is earlier than current UTC time '${armTime(new Date(this.state.now()))}'.`,
          this.challenge(tenant, "The access token expiry UTC time is earlier than current UTC time."));
      }
      if (err.code === "audience") {
        fail(401, "InvalidAuthenticationToken",
          `The access token has been obtained for wrong audience or resource '${String(peek.aud ?? "")}'. It should exactly match with one of the allowed audiences ${ARM_AUDIENCE_LIST}.`, h);
      }
      if (err.code === "issuer") fail(401, "InvalidAuthenticationTokenTenant", `The access token is from the wrong issuer '${String(peek.iss ?? "")}'.`, h);
      fail(401, "InvalidAuthenticationToken", "The access token is invalid.", h);
    }
    return {
      oid: String(claims.oid ?? ""),
      tid: String(claims.tid ?? ""),
      idtyp: claims.idtyp === "app" ? "app" : "user",
      displayName: String(claims.upn ?? claims.appid ?? claims.oid ?? ""),
      claims,
    };
  }

  // ---- authorization

  /**
   * RBAC: role assignments and managed-app authorizations on the MRG (state.isAllowed), plus the
   * publisher's view of the application resource itself. docs/azure-behaviour.md §5.1: the publisher reading customers'
   * apps is unconfirmed; the original tool relies on it, so an app's `authorizations` also cover the app.
   */
  allowed(oid: string, scope: string, action: string): boolean {
    if (this.state.isAllowed(oid, scope, { action })) return true;
    const p = oid.toLowerCase();
    // The apps whose id is `scope` or above it.
    const apps = this.state.resources.index.byType.get("microsoft.solutions/applications");
    const key = scope.replace(/\/+$/, "").toLowerCase();
    for (let i = key.length; i > 0; i = key.lastIndexOf("/", i - 1)) {
      const app = apps?.get(key.slice(0, i));
      if (!app || !scopeContains(app.id, scope)) continue;
      for (const a of (app.properties.authorizations ?? []) as Array<{ principalId: string; roleDefinitionId: string }>) {
        if (a.principalId.toLowerCase() !== p) continue;
        const def = ROLE_DEFINITIONS[lastSegment(a.roleDefinitionId).toLowerCase()];
        if (def && def.actions.some((x) => actionMatches(x, action)) && !def.notActions.some((x) => actionMatches(x, action))) return true;
      }
    }
    return false;
  }

  /** 403 AuthorizationFailed unless the caller may perform `action` over `scope`. */
  authorize(caller: Caller, scope: string, action: string): void {
    if (this.allowed(caller.oid, scope, action)) return;
    fail(403, "AuthorizationFailed",
      `The client '${caller.oid}' with object id '${caller.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`);
  }

  /** Whether the principal holds any role at, above or below `scope` (what makes a subscription visible). */
  hasAnyRoleAround(oid: string, scope: string): boolean {
    const p = oid.toLowerCase();
    for (const ra of this.state.roleAssignmentsOf(p)) {
      const props = ra.properties as { principalId?: string; scope?: string };
      if (String(props.principalId ?? "").toLowerCase() !== p) continue;
      const s = String(props.scope ?? "");
      if (scopeContains(s, scope) || scopeContains(scope, s)) return true;
    }
    // The apps that can qualify: their id beneath or at `scope`, their MRG beneath or at it, or their MRG above it.
    const key = scope.replace(/\/+$/, "").toLowerCase();
    const candidates = new Set([
      ...this.state.appsWithMrgUnder(scope),
      ...this.state.appsCovering(scope),
      ...[this.state.managedApp(scope)].filter((a) => a !== undefined),
      ...(key === "" ? this.state.managedApps() : this.state.resourcesUnder(scope).filter((r) => r.type.toLowerCase() === "microsoft.solutions/applications")),
    ]);
    for (const app of candidates) {
      const auths = (app.properties.authorizations ?? []) as Array<{ principalId: string }>;
      if (!auths.some((a) => a.principalId.toLowerCase() === p)) continue;
      const mrg = String(app.properties.managedResourceGroupId ?? "");
      if (scopeContains(scope, app.id) || scopeContains(scope, mrg) || scopeContains(mrg, scope)) return true;
    }
    return false;
  }

  /** Subscriptions the caller sees: any role in them (cross-tenant through managed-app authorizations, as Lighthouse-like projections). */
  visibleSubscriptions(caller: Caller): Subscription[] {
    return [...this.state.subscriptions.values()].filter((s) => this.hasAnyRoleAround(caller.oid, subscriptionScope(s.subscriptionId)));
  }

  /** A token from another tenant is refused unless the caller has access projected into this subscription. */
  checkTenant(caller: Caller, sub: Subscription): void {
    if (caller.tid.toLowerCase() === sub.tenantId.toLowerCase()) return;
    if (this.hasAnyRoleAround(caller.oid, subscriptionScope(sub.subscriptionId))) return;
    const want = sub.tenantId;
    fail(401, "InvalidAuthenticationTokenTenant",
      `The access token is from the wrong issuer 'https://sts.windows.net/${caller.tid}/'. It must match the tenant 'https://sts.windows.net/${want}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/${want}' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later.`,
      this.challenge(want, "The access token is from the wrong issuer."));
  }

  // ---- request plumbing

  apiVersionOf(c: RouteContext): string {
    const v = c.url.searchParams.get("api-version");
    if (!v) fail(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    return v;
  }

  /** 400 when `apiVersion` is not one of the type's: ARM's wording differs for its own types and for providers. */
  checkApiVersion(type: string, apiVersion: string, versions?: string[], location?: string): void {
    const list = versions ?? API_VERSIONS[type.toLowerCase()];
    if (!list) throw new Error(`arm: no api-versions for ${type}`);
    if (list.some((v) => v.toLowerCase() === apiVersion.toLowerCase())) return;
    const [ns, ...rest] = type.split("/");
    if (ns.toLowerCase() === "microsoft.resources" || ns.toLowerCase() === "microsoft.resourcegraph") {
      fail(400, "InvalidApiVersionParameter", `The api-version '${apiVersion}' is invalid. The supported versions are '${list.join(",")}'.`);
    }
    const shortType = rest.join("/");
    if (location) {
      fail(400, "NoRegisteredProviderFound",
        `No registered resource provider found for location '${location}' and API version '${apiVersion}' for type '${shortType}'. The supported api-versions are '${list.join(", ")}'. The supported locations are '${REGIONS.join(", ")}'.`);
    }
    fail(400, "InvalidResourceType",
      `The resource type '${shortType}' could not be found in the namespace '${ns}' for api version '${apiVersion}'. The supported api-versions are '${list.join(",")}'.`);
  }

  subscriptionOr404(id: string): Subscription {
    const sub = this.state.subscriptions.get(id.toLowerCase());
    if (!sub) fail(404, "SubscriptionNotFound", `The subscription '${id}' could not be found.`);
    return sub;
  }

  /** The stored resource group, or 404 ResourceGroupNotFound. */
  rgOr404(sub: Subscription, rg: string): ArmResource {
    const r = this.state.getResource(rgId(sub.subscriptionId, rg));
    if (!r || r.type !== "Microsoft.Resources/resourceGroups") fail(404, "ResourceGroupNotFound", `Resource group '${rg}' could not be found.`);
    return r;
  }

  notFound(type: string, name: string, rg: string): never {
    fail(404, "ResourceNotFound", `The Resource '${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
  }

  /** 400 LocationRequired / LocationNotAvailableForResourceType; returns the normalised location. */
  location(body: { location?: unknown }, type: string): string {
    if (typeof body.location !== "string" || !body.location.trim()) fail(400, "LocationRequired", "The location property is required for this definition.");
    const loc = normLocation(body.location);
    if (REGIONS.includes(loc)) return loc;
    if (type === "Microsoft.Resources/resourceGroups") {
      fail(400, "LocationNotAvailableForResourceGroup", `The provided location '${body.location}' is not available for resource group. List of available regions is '${REGIONS.join(",")}'.`);
    }
    fail(400, "LocationNotAvailableForResourceType", `The provided location '${body.location}' is not available for resource type '${type}'. List of available regions for the resource type is '${REGIONS.join(",")}'.`);
  }

  /** Wraps a handler: authentication, api-version, subscription and tenant checks, ARM headers. */
  route(spec: ArmRouteSpec): Route {
    return {
      method: spec.method,
      path: spec.path,
      handler: (c) => this.run(c, async (caller, apiVersion) => {
        let sub = undefined as unknown as Subscription;
        if (c.params.subscriptionId !== undefined) {
          sub = this.subscriptionOr404(c.params.subscriptionId);
        }
        let bodyCache: unknown;
        const body = <T,>(): T => {
          if (bodyCache === undefined) bodyCache = parseArmJson(c);
          return bodyCache as T;
        };
        // A PUT that names a location is answered with the location-specific wording, as ARM does.
        let location: string | undefined;
        if (spec.method === "PUT") {
          try {
            const b = body<{ location?: unknown }>();
            if (typeof b?.location === "string") location = normLocation(b.location);
          } catch { /* the handler reports the bad body */ }
        }
        this.checkApiVersion(spec.type, apiVersion, spec.versions, location);
        if (sub) this.checkTenant(caller, sub);
        return await spec.handler({ c, p: c.params, caller, apiVersion, sub, body });
      }),
    };
  }

  /** Authentication, api-version presence and ARM headers around any handler. */
  async run(c: RouteContext, fn: (caller: Caller, apiVersion: string) => Reply | Promise<Reply>): Promise<Reply> {
    try {
      const caller = await this.authenticate(c);
      const apiVersion = this.apiVersionOf(c);
      const reply = await fn(caller, apiVersion);
      if (c.method === "HEAD") return withArmHeaders(c, { ...reply, body: undefined });
      return withArmHeaders(c, reply);
    } catch (err) {
      if (err instanceof HttpReplyError) return withArmHeaders(c, err.reply);
      throw err;
    }
  }
}

/**
 * Strict JSON from what ARM's deserializer (Json.NET) also takes: property names without quotes
 * and comments. The real az (2.45) sends a deployment as `{"properties": {…, template:{…}}}`: it
 * splices the template file's text into the body under an unquoted key, and Azure accepts it.
 * Strings are copied as they are; anything else that is not JSON stays for JSON.parse to refuse.
 */
export function armLenientJson(text: string): string {
  let out = "";
  for (let i = 0; i < text.length;) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (ch === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (/[A-Za-z_$]/.test(ch) && /[{,]\s*$/.test(out)) {
      let j = i;
      while (j < text.length && /[\w$]/.test(text[j])) j++;
      const word = text.slice(i, j);
      out += /^\s*:/.test(text.slice(j)) ? JSON.stringify(word) : word;
      i = j;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

function parseArmJson(c: RouteContext): unknown {
  const text = c.text();
  if (!text.trim()) return {};
  try {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      v = JSON.parse(armLenientJson(text));
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Expected a JSON object.'.");
    }
    return v;
  } catch (err) {
    if (err instanceof HttpReplyError) throw err;
    fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: '${(err as Error).message}'.`);
  }
}

/** ARM's time format in auth messages: 05/14/2024 10:11:12. */
function armTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

export const newGuid = (): string => randomUUID();
