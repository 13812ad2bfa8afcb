// Sign-ins of the seeded ISV user (docs/azure-behaviour.md §3.4), as Microsoft's public clients
// (az, azure-identity's developer credentials) make them:
//   instance discovery  GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…
//   user realm          GET /common/userrealm/{upn}?api-version=1.0  (MSAL asks before ROPC)
//   device code         POST /{tenant}/oauth2/v2.0/devicecode, then polls of the token endpoint
//                       (grant_type=urn:ietf:params:oauth:grant-type:device_code); the sandbox
//                       approves a code after its first poll, which answers authorization_pending
//   username/password   grant_type=password (ROPC)
//   refresh token       grant_type=refresh_token
// The token endpoint itself (service.mts) hands these grants to `userGrant`.
import { randomBytes } from "node:crypto";
import type { Reply, RouteContext } from "../../core/http.mts";
import type { Tenant, User } from "../../core/state.mts";
import type { SandboxContext } from "../../core/context.mts";
import { aadsts, correlationIdOf, errorBody, traceHeaders } from "./aadsts.mts";

export const GRANT_PASSWORD = "password";
export const GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code";
export const GRANT_REFRESH_TOKEN = "refresh_token";
export const USER_GRANTS: readonly string[] = [GRANT_PASSWORD, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN];

/** Microsoft's first-party public clients the sandbox lets users sign in to (docs/azure-behaviour.md §3.4). */
export const PUBLIC_CLIENTS: Readonly<Record<string, string>> = {
  "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
  "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
  "aebc6443-996d-45c2-90f0-388ff96faa56": "Visual Studio Code",
};

/** Scopes that are about the sign-in itself, not a resource. */
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);
const GRAPH_RESOURCE = "https://graph.microsoft.com";
const VERIFICATION_URI = "https://microsoft.com/devicelogin";

/** The hosts of Microsoft's public and national clouds, as instance discovery lists them (docs/azure-behaviour.md §3.4). */
const CLOUD_METADATA = [
  { preferred_network: "login.microsoftonline.com", preferred_cache: "login.windows.net", aliases: ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"] },
  { preferred_network: "login.partner.microsoftonline.cn", preferred_cache: "login.partner.microsoftonline.cn", aliases: ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"] },
  { preferred_network: "login.microsoftonline.de", preferred_cache: "login.microsoftonline.de", aliases: ["login.microsoftonline.de"] },
  { preferred_network: "login.microsoftonline.us", preferred_cache: "login.microsoftonline.us", aliases: ["login.microsoftonline.us", "login.usgovcloudapi.net"] },
  { preferred_network: "login-us.microsoftonline.com", preferred_cache: "login-us.microsoftonline.com", aliases: ["login-us.microsoftonline.com"] },
];

interface DeviceCode {
  deviceCode: string;
  userCode: string;
  clientId: string;
  scope: string;
  tenantSegment: string;
  expiresAtMs: number;
  intervalS: number;
  polls: number;
  lastPollMs: number | undefined;
  redeemed: boolean;
}

interface RefreshToken {
  userObjectId: string;
  clientId: string;
  expiresAtMs: number;
}

/** An OAuth error of the user flows: Entra's body, with an AADSTS code where one is known. */
function oauthError(rc: RouteContext, nowMs: number, status: number, error: string, description: string, code?: number): Reply {
  const { headers, body } = errorBody(rc, nowMs, error, code ? `AADSTS${code}: ${description}` : description, code ? [code] : []);
  return { status, headers, body };
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Letters without look-alikes, as Entra's user codes are: nine of them. */
function userCode(): string {
  const alphabet = "BCDFGHJKLMNPQRSTVWXZ23456789";
  const bytes = randomBytes(9);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

export interface UserSignIn {
  routes: Array<{ method: string; path: string; handler: (rc: RouteContext) => Promise<Reply> | Reply }>;
  /** The token endpoint's answer for the user grants. */
  userGrant(rc: RouteContext, version: "v1" | "v2", form: URLSearchParams): Promise<Reply>;
}

export function createUserSignIn(ctx: SandboxContext, findTenant: (segment: string) => Tenant | undefined): UserSignIn {
  const { state, tokens } = ctx;
  const deviceCodes = state.store("entra.deviceCodes", () => new Map<string, DeviceCode>());
  const refreshTokens = state.store("entra.refreshTokens", () => new Map<string, RefreshToken>());
  const base = () => ctx.endpoints.entra;
  const ownHost = () => new URL(base()).host.toLowerCase();

  const userByName = (name: string): User | undefined => {
    const n = name.trim().toLowerCase();
    return [...state.users.values()].find((u) => u.userPrincipalName.toLowerCase() === n);
  };

  const checkClient = (form: URLSearchParams, tenantName: string): string => {
    const clientId = (form.get("client_id") ?? "").toLowerCase();
    if (!clientId) throw aadsts(900144, "client_id");
    if (!PUBLIC_CLIENTS[clientId]) throw aadsts(700016, clientId, tenantName);
    return clientId;
  };

  /** The tenant of a sign-in path: a seeded tenant, or the user's home tenant for /organizations and /common. */
  const tenantOf = (segment: string, user: User | undefined): Tenant => {
    const s = segment.toLowerCase();
    if (s === "organizations" || s === "common") {
      const home = user && state.tenants.get(user.tenantId);
      if (home) return home;
      return state.tenants.get(state.seed.isv.tenantId)!;
    }
    const t = findTenant(segment);
    if (!t) throw aadsts(90002, segment);
    return t;
  };

  /** The one resource a scope list names (OIDC scopes aside); Graph when it names none. */
  const resourceOfScopes = (scope: string): { resource: string; scopes: string[] } => {
    const scopes = scope.split(/\s+/).filter(Boolean);
    const resources = scopes.filter((s) => !OIDC_SCOPES.has(s.toLowerCase())).map((s) => {
      const i = s.lastIndexOf("/");
      // `https://management.core.windows.net//.default` → `https://management.core.windows.net/`
      return i > "https://".length ? s.slice(0, i) : s;
    });
    const distinct = [...new Set(resources.map((r) => r.replace(/\/+$/, "").toLowerCase()))];
    if (distinct.length > 1) throw aadsts(700022, scope);
    return { resource: resources[0] ?? GRAPH_RESOURCE, scopes };
  };

  const knownResource = (resource: string): boolean => {
    const norm = (r: string) => r.replace(/\/+$/, "").toLowerCase();
    const known = [
      "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", "https://management.azure.com", "https://management.core.windows.net",
      "https://vault.azure.net", "https://storage.azure.com", "https://servicebus.azure.net", GRAPH_RESOURCE,
      "00000003-0000-0000-c000-000000000000", ctx.endpoints.arm, ctx.endpoints.graph,
    ].filter(Boolean).map(norm);
    return known.includes(norm(resource));
  };

  /** Access, id and refresh token for `user` in `tenant`, in the v2 (or v1) token response shape. */
  const issueUserTokens = async (rc: RouteContext, version: "v1" | "v2", o: { user: User; tenant: Tenant; clientId: string; scope: string; resource?: string; grant: string }): Promise<Reply> => {
    const { resource, scopes } = o.resource !== undefined ? { resource: o.resource, scopes: [] as string[] } : resourceOfScopes(o.scope);
    if (!knownResource(resource)) throw aadsts(500011, resource, o.tenant.displayName);
    const lifetimeS = state.options.entra.userTokenLifetimeS;
    const { token, claims } = await tokens.issue({
      tenantId: o.tenant.tenantId,
      audience: resource,
      objectId: o.user.objectId,
      idtyp: "user",
      lifetimeS,
      grant: o.grant,
      extraClaims: {
        upn: o.user.userPrincipalName, unique_name: o.user.userPrincipalName, name: o.user.displayName,
        scp: "user_impersonation", amr: ["pwd"], appid: o.clientId, appidacr: "0",
      },
    });
    const nowS = Math.floor(state.now() / 1000);
    const expiresIn = Number(claims.exp) - nowS;
    const refreshToken = `0.sandbox.${randomBytes(32).toString("base64url")}`;
    refreshTokens.set(refreshToken, { userObjectId: o.user.objectId, clientId: o.clientId, expiresAtMs: state.now() + state.options.entra.refreshTokenLifetimeS * 1000 });
    const idToken = await tokens.signIdToken({
      aud: o.clientId, iss: `${base()}/${o.tenant.tenantId}/v2.0`, iat: nowS, nbf: nowS, exp: nowS + 3600,
      name: o.user.displayName, oid: o.user.objectId, preferred_username: o.user.userPrincipalName, sub: o.user.objectId,
      tid: o.tenant.tenantId, ver: "2.0",
    });
    const clientInfo = b64urlJson({ uid: o.user.objectId, utid: o.user.tenantId });
    const headers = traceHeaders(rc, correlationIdOf(rc));
    if (version === "v1") {
      return {
        status: 200, headers,
        body: {
          token_type: "Bearer", scope: "user_impersonation", expires_in: String(expiresIn), ext_expires_in: String(expiresIn),
          expires_on: String(claims.exp), not_before: String(claims.nbf), resource, access_token: token, refresh_token: refreshToken, id_token: idToken,
        },
      };
    }
    const granted = [`${resource.replace(/\/+$/, "")}/user_impersonation`, ...scopes.filter((s) => OIDC_SCOPES.has(s.toLowerCase()) && s !== "offline_access")];
    return {
      status: 200, headers,
      body: {
        token_type: "Bearer", scope: granted.join(" "), expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token,
        refresh_token: refreshToken, id_token: idToken, client_info: clientInfo,
      },
    };
  };

  // ---- the grants

  const password = async (rc: RouteContext, version: "v1" | "v2", form: URLSearchParams): Promise<Reply> => {
    const segment = rc.params.tenant;
    const now = state.now();
    // ROPC needs a tenant: /common (and /consumers) refuse it (docs/azure-behaviour.md §3.4).
    if (segment.toLowerCase() === "common" || segment.toLowerCase() === "consumers") {
      // The exact AADSTS code and text are unconfirmed → none.
      return oauthError(rc, now, 400, "invalid_request", "The username/password (ROPC) grant needs a tenant (or /organizations); /common and /consumers do not take it.");
    }
    const username = form.get("username") ?? "";
    if (!username) throw aadsts(900144, "username");
    if (!form.has("password")) throw aadsts(900144, "password");
    const user = userByName(username);
    const tenant = tenantOf(segment, user);
    const clientId = checkClient(form, tenant.displayName);
    if (!user) {
      return oauthError(rc, now, 400, "invalid_grant", `The user account {EmailHidden} does not exist in the ${tenant.tenantId} directory. To sign into this application, the account must be added to the directory.`, 50034);
    }
    const expected = user.objectId === state.seed.isv.user.objectId ? state.seed.isv.user.password : undefined;
    if (expected === undefined || form.get("password") !== expected) {
      return oauthError(rc, now, 400, "invalid_grant", "Error validating credentials due to invalid username or password.", 50126);
    }
    return await issueUserTokens(rc, version, { user, tenant, clientId, scope: form.get("scope") ?? "", resource: version === "v1" ? form.get("resource") ?? "" : undefined, grant: "password" });
  };

  const deviceCodeGrant = async (rc: RouteContext, version: "v1" | "v2", form: URLSearchParams): Promise<Reply> => {
    const now = state.now();
    const code = form.get("device_code") ?? form.get("code") ?? "";
    if (!code) throw aadsts(900144, "device_code");
    const dc = deviceCodes.get(code);
    // No AADSTS code is documented for an unknown device code (unconfirmed → none).
    if (!dc) return oauthError(rc, now, 400, "bad_verification_code", "The device_code is not known; request a new code.");
    const tenant = tenantOf(rc.params.tenant, state.users.get(state.seed.isv.user.objectId));
    const clientId = checkClient(form, tenant.displayName);
    if (clientId !== dc.clientId) return oauthError(rc, now, 400, "invalid_grant", "The device_code was issued to another client.", 70000);
    if (dc.redeemed || now >= dc.expiresAtMs) {
      deviceCodes.delete(code);
      return oauthError(rc, now, 400, "expired_token", "Verification code expired.", 70019);
    }
    dc.polls++;
    const last = dc.lastPollMs;
    dc.lastPollMs = now;
    // Polling sooner than `interval` after the last poll (half a second's grace) → slow_down (RFC 8628 §3.5).
    if (last !== undefined && now - last < dc.intervalS * 1000 - 500) {
      return oauthError(rc, now, 400, "slow_down", "OAuth 2.0 device flow error. Polling too fast: wait the interval between polls.");
    }
    // The sandbox's user approves every code once the client has started polling.
    if (dc.polls === 1) {
      return oauthError(rc, now, 400, "authorization_pending", "OAuth 2.0 device flow error. Authorization is pending. Continue polling.", 70016);
    }
    dc.redeemed = true;
    const user = state.users.get(state.seed.isv.user.objectId)!;
    return await issueUserTokens(rc, version, { user, tenant, clientId, scope: dc.scope, grant: "device_code" });
  };

  const refreshGrant = async (rc: RouteContext, version: "v1" | "v2", form: URLSearchParams): Promise<Reply> => {
    const now = state.now();
    const rt = form.get("refresh_token") ?? "";
    if (!rt) throw aadsts(900144, "refresh_token");
    const entry = refreshTokens.get(rt);
    const user = entry && state.users.get(entry.userObjectId);
    const tenant = tenantOf(rc.params.tenant, user);
    const clientId = checkClient(form, tenant.displayName);
    if (!entry || !user || entry.clientId !== clientId) {
      return oauthError(rc, now, 400, "invalid_grant", "Provided grant is invalid or malformed.", 70000);
    }
    if (now >= entry.expiresAtMs) {
      refreshTokens.delete(rt);
      return oauthError(rc, now, 400, "invalid_grant", "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.", 70008);
    }
    return await issueUserTokens(rc, version, { user, tenant, clientId, scope: form.get("scope") ?? "", resource: version === "v1" ? form.get("resource") ?? "" : undefined, grant: "refresh_token" });
  };

  const userGrant = (rc: RouteContext, version: "v1" | "v2", form: URLSearchParams): Promise<Reply> => {
    const grant = form.get("grant_type");
    if (version === "v1" && grant !== GRANT_DEVICE_CODE && !form.get("resource")) throw aadsts(900144, "resource");
    if (grant === GRANT_PASSWORD) return password(rc, version, form);
    if (grant === GRANT_DEVICE_CODE) return deviceCodeGrant(rc, version, form);
    return refreshGrant(rc, version, form);
  };

  // ---- the endpoints

  const deviceCodeRequest = (rc: RouteContext): Reply => {
    const form = new URLSearchParams(rc.text());
    const tenant = tenantOf(rc.params.tenant, state.users.get(state.seed.isv.user.objectId));
    const clientId = checkClient(form, tenant.displayName);
    const scope = form.get("scope") ?? "";
    if (!scope) throw aadsts(900144, "scope");
    resourceOfScopes(scope);
    const opts = state.options.entra;
    const dc: DeviceCode = {
      deviceCode: randomBytes(48).toString("base64url"), userCode: userCode(), clientId, scope, tenantSegment: rc.params.tenant,
      expiresAtMs: state.now() + opts.deviceCodeLifetimeS * 1000, intervalS: opts.deviceCodeIntervalS, polls: 0, lastPollMs: undefined, redeemed: false,
    };
    deviceCodes.set(dc.deviceCode, dc);
    return {
      status: 200,
      headers: traceHeaders(rc, correlationIdOf(rc)),
      body: {
        user_code: dc.userCode,
        device_code: dc.deviceCode,
        verification_uri: VERIFICATION_URI,
        expires_in: opts.deviceCodeLifetimeS,
        interval: opts.deviceCodeIntervalS,
        message: `To sign in, use a web browser to open the page ${VERIFICATION_URI} and enter the code ${dc.userCode} to authenticate.`,
      },
    };
  };

  /**
   * Instance discovery: for a Microsoft cloud host or this Entra's own host, where the tenant's
   * metadata is and which hosts are aliases; for any other host `invalid_instance`.
   */
  const instanceDiscovery = (rc: RouteContext): Reply => {
    const q = rc.url.searchParams;
    const now = state.now();
    const apiVersion = q.get("api-version") ?? "1.1";
    const endpoint = q.get("authorization_endpoint");
    let host = ownHost();
    let tenant = "common";
    if (endpoint) {
      let u: URL;
      try {
        u = new URL(endpoint);
      } catch {
        return oauthError(rc, now, 400, "invalid_instance", "AADSTS50049: Unknown or invalid instance.", 50049);
      }
      host = u.host.toLowerCase();
      tenant = u.pathname.split("/").filter(Boolean)[0] ?? "common";
    }
    const cloud = CLOUD_METADATA.find((m) => m.aliases.includes(host));
    if (!cloud && host !== ownHost()) {
      const { headers, body } = errorBody(rc, now, "invalid_instance", "AADSTS50049: Unknown or invalid instance.", [50049]);
      return { status: 400, headers, body };
    }
    const own = { preferred_network: ownHost(), preferred_cache: ownHost(), aliases: [ownHost()] };
    // Behind a proxy front the sandbox answers as login.microsoftonline.com: that cloud's hosts are then its own.
    const metadata = cloud ? CLOUD_METADATA : [own, ...CLOUD_METADATA];
    const origin = cloud ? `https://${cloud.preferred_network}` : base();
    return {
      status: 200,
      headers: { ...traceHeaders(rc, correlationIdOf(rc)), "Cache-Control": "max-age=86400, private" },
      body: { tenant_discovery_endpoint: `${origin}/${tenant}/v2.0/.well-known/openid-configuration`, "api-version": apiVersion, metadata },
    };
  };

  /** Home realm discovery: every seeded user is a cloud-only (Managed) account, so MSAL goes on with ROPC. */
  const userRealm = (rc: RouteContext): Reply => {
    const name = rc.params.username;
    const user = userByName(name);
    const domain = name.includes("@") ? name.split("@").pop()! : name;
    return {
      status: 200,
      headers: traceHeaders(rc, correlationIdOf(rc)),
      body: user
        ? { ver: "1.0", account_type: "Managed", domain_name: domain, cloud_instance_name: "microsoftonline.com", cloud_audience_urn: "urn:federation:MicrosoftOnline" }
        : { ver: "1.0", account_type: "Unknown", cloud_instance_name: "microsoftonline.com" },
    };
  };

  /** The authorization endpoint MSAL needs in the metadata: no browser here, so it says to use a device code. */
  const authorize = (rc: RouteContext): Reply =>
    oauthError(rc, state.now(), 400, "unsupported_response_type",
      "The sandbox has no interactive (browser) sign-in; use the device code flow (az login --use-device-code) or a username and password.");

  return {
    userGrant,
    routes: [
      { method: "GET", path: "/:tenant/discovery/instance", handler: instanceDiscovery },
      { method: "GET", path: "/common/userrealm/:username", handler: userRealm },
      { method: "POST", path: "/:tenant/oauth2/v2.0/devicecode", handler: deviceCodeRequest },
      { method: "GET", path: "/:tenant/oauth2/v2.0/authorize", handler: authorize },
      { method: "GET", path: "/:tenant/oauth2/authorize", handler: authorize },
    ],
  };
}
