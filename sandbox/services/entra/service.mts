// Emulated Microsoft Entra ID: tenant OIDC metadata and keys, and the v1/v2 token endpoints for
// the client-credentials grant with a client assertion (workload identity federation onto a
// user-assigned managed identity), validated in the order of docs/azure-behaviour.md §2.7 and answered
// with the AADSTS codes, statuses and messages of docs/azure-behaviour.md §2.6 (aadsts.mts).
import * as jose from "jose";
import { type Reply, type RouteContext, type ServiceDef } from "../../core/http.mts";
import type { ArmResource, Tenant } from "../../core/state.mts";
import type { SandboxContext } from "../../core/context.mts";
import { AadstsError, MIN_RSA_MODULUS_BITS, aadsts, correlationIdOf, errorBody, errorReply, traceHeaders } from "./aadsts.mts";
import { GRANT_DEVICE_CODE, USER_GRANTS, createUserSignIn } from "./user-signin.mts";
import { appDirectory } from "./applications.mts";

// ---------------------------------------------------------------- constants

/** The Marketplace metering API's application id (docs/azure-behaviour.md §3.3). */
export const METERING_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

/** Resources a token can be requested for; compared case-insensitively without trailing slashes. */
export const KNOWN_RESOURCES: readonly string[] = [
  METERING_APP_ID,
  `api://${METERING_APP_ID}`,
  "https://management.azure.com/",
  "https://management.core.windows.net/",
  "https://vault.azure.net",
  "https://storage.azure.com/",
  "https://servicebus.azure.net",
  "https://graph.microsoft.com",
];

const GRANT_CLIENT_CREDENTIALS = "client_credentials";
/** The grants the token endpoints serve: the federated client credentials, and the user sign-ins (user-signin.mts). */
const GRANT_TYPES = [GRANT_CLIENT_CREDENTIALS, ...USER_GRANTS];
/** A client assertion (managed identities have no secret), or none at all (the public clients of user sign-ins). */
const TOKEN_AUTH_METHODS = ["private_key_jwt", "none"];
const ASSERTION_TYPE_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** Entra's cap on a federated assertion's exp − iat: `1.01:00:00` (docs/azure-behaviour.md §2.3). */
const MAX_ASSERTION_LIFETIME_S = 25 * 3600;
/** Entra stores only the first 100 keys of an issuer's JWKS (docs/azure-behaviour.md §2.4). */
const MAX_JWKS_KEYS = 100;
const OIDC_FETCH_TIMEOUT_MS = 10_000;
/** Hosts whose tokens are Entra's own (docs/azure-behaviour.md §2.3: not usable for federation). */
const ENTRA_ISSUER_HOSTS = ["sts.windows.net", "login.microsoftonline.com", "login.windows.net", "login.microsoft.com"];

// ---------------------------------------------------------------- the service

interface IssuerKeys {
  keys: unknown[];
  fetchedAtMs: number;
}

/** The last answer of an issuer URL: its validator and bytes, and what they parsed to. */
interface FetchedDocument {
  etag: string | undefined;
  text: string;
  json: unknown;
}

/** The resource a v2 scope names: the scope minus its `/.default` suffix. */
function _resourceOfScope(scope: string): string {
  return scope.slice(0, -"/.default".length);
}

function _normResource(r: string): string {
  return r.replace(/\/+$/, "").toLowerCase();
}

const KNOWN_RESOURCE_SET = new Set(KNOWN_RESOURCES.map(_normResource));

function _isEntraIssuer(iss: string, ownOrigin: string): boolean {
  let url: URL;
  try {
    url = new URL(iss);
  } catch {
    return false;
  }
  if (ownOrigin && url.origin === ownOrigin) return true;
  const host = url.hostname.toLowerCase();
  return ENTRA_ISSUER_HOSTS.some((h) => host === h || host.endsWith("." + h));
}

/** Bits of an RSA modulus given as base64url. */
function _modulusBits(n: string): number {
  const bytes = jose.base64url.decode(n);
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]));
}

const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const B64_ANY_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * The RSA public key of a JWKS entry in the shape Entra accepts, or undefined. Strict: kty RSA,
 * use sig, alg RS256 when present, unpadded base64url n/e. Lenient (the 2023 bash tool's JWKS):
 * use/alg may be missing, n/e may be padded or standard base64.
 */
function _usableRsaKey(k: Record<string, unknown>, lenient: boolean): { n: string; e: string } | undefined {
  if (k.kty !== "RSA" || typeof k.n !== "string" || typeof k.e !== "string") return undefined;
  if (k.alg !== undefined && k.alg !== "RS256") return undefined;
  if (lenient) {
    if (k.use !== undefined && k.use !== "sig") return undefined;
    if (!B64_ANY_RE.test(k.n) || !B64_ANY_RE.test(k.e)) return undefined;
    const fix = (s: string) => s.replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    return { n: fix(k.n), e: fix(k.e) };
  }
  if (k.use !== "sig") return undefined;
  if (!B64URL_RE.test(k.n) || !B64URL_RE.test(k.e)) return undefined;
  return { n: k.n, e: k.e };
}

/**
 * The emulated Entra ID service: `/{tenant}/v2.0/.well-known/openid-configuration` (and v1),
 * `/{tenant}/discovery[/v2.0]/keys`, `/{tenant}/oauth2[/v2.0]/token`.
 *
 * @example
 * const def = createEntraService(ctx);
 * await ctx.listenHttps(def);
 */
export function createEntraService(ctx: SandboxContext): ServiceDef {
  const { state, tokens } = ctx;
  const issuerKeys = new Map<string, IssuerKeys>();
  /** Per issuer URL (discovery document, JWKS): the last 200 answer, for conditional fetches. */
  const fetched = new Map<string, FetchedDocument>();
  /** Imported public keys per JWKS entry object (entries are reused while the JWKS bytes are unchanged). */
  const importedKeys = new WeakMap<object, ReturnType<typeof jose.importJWK>>();
  /**
   * Assertions whose signature was verified, per JWKS entry object: a run presents one assertion
   * for all its customers, and verifying the same bytes against the same key gives the same
   * answer (the discovery document and JWKS are still fetched per exchange, as Entra does).
   */
  const verified = new WeakMap<object, Set<string>>();
  /** Used assertion ids (`iss` + `jti`) with their expiry, for options.entra.singleUseJti. */
  const usedJtis = new Map<string, number>();

  const base = () => ctx.endpoints.entra;

  // Entra answers under the tenant id and under every verified domain of the tenant (indexed).
  const findTenant = (segment: string): Tenant | undefined => state.tenants.find(segment);

  const users = createUserSignIn(ctx, findTenant);

  /** Runs a handler, turning AadstsError into Entra's error body. */
  const entraRoute = (fn: (rc: RouteContext) => Promise<Reply> | Reply) => async (rc: RouteContext): Promise<Reply> => {
    try {
      return await fn(rc);
    } catch (err) {
      if (err instanceof AadstsError) return errorReply(rc, state.now(), err);
      throw err;
    }
  };

  // ---- metadata

  /** `{tenant}` of a metadata path: a seeded tenant, or the multi-tenant aliases (placeholder issuer). */
  const metadataTenant = (segment: string): { pathTenant: string; issuerTenant: string } => {
    const alias = segment.toLowerCase();
    if (alias === "common" || alias === "organizations") return { pathTenant: alias, issuerTenant: "{tenantid}" };
    const t = findTenant(segment);
    if (!t) throw aadsts(90002, segment);
    return { pathTenant: t.tenantId, issuerTenant: t.tenantId };
  };

  const openIdConfigurationV2 = (rc: RouteContext): Reply => {
    const { pathTenant, issuerTenant } = metadataTenant(rc.params.tenant);
    const root = `${base()}/${pathTenant}`;
    return {
      status: 200,
      body: {
        // Only what this Entra serves (docs/azure-behaviour.md §3.4): no logout, no browser sign-in
        // (the authorization endpoint MSAL requires answers with an error saying so).
        token_endpoint: `${root}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: TOKEN_AUTH_METHODS,
        grant_types_supported: GRANT_TYPES,
        jwks_uri: `${root}/discovery/v2.0/keys`,
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: [],
        scopes_supported: ["openid", "profile", "offline_access"],
        // Same origin as the authority: MSAL accepts an issuer whose scheme, host and port match it.
        issuer: `${base()}/${issuerTenant}/v2.0`,
        request_uri_parameter_supported: false,
        authorization_endpoint: `${root}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${root}/oauth2/v2.0/devicecode`,
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp", "idtyp", "xms_mirid"],
        tenant_region_scope: "EU",
        cloud_instance_name: "microsoftonline.com",
        cloud_graph_host_name: "graph.windows.net",
        msgraph_host: "graph.microsoft.com",
      },
    };
  };

  const openIdConfigurationV1 = (rc: RouteContext): Reply => {
    const { pathTenant, issuerTenant } = metadataTenant(rc.params.tenant);
    const root = `${base()}/${pathTenant}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${root}/oauth2/token`,
        token_endpoint_auth_methods_supported: TOKEN_AUTH_METHODS,
        grant_types_supported: GRANT_TYPES.filter((g) => g !== GRANT_DEVICE_CODE),
        jwks_uri: `${root}/discovery/keys`,
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: [],
        scopes_supported: ["openid"],
        // The v1 issuer: what the access tokens of this service carry in `iss`.
        issuer: `https://sts.windows.net/${issuerTenant}/`,
        authorization_endpoint: `${root}/oauth2/authorize`,
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "idtyp", "xms_mirid"],
        tenant_region_scope: "EU",
        cloud_instance_name: "microsoftonline.com",
        cloud_graph_host_name: "graph.windows.net",
        msgraph_host: "graph.microsoft.com",
      },
    };
  };

  const keys = (rc: RouteContext): Reply => {
    metadataTenant(rc.params.tenant);
    return { status: 200, body: tokens.jwks() };
  };

  // ---- the issuer's OIDC discovery and JWKS

  const fail50166 = (iss: string, reason: string): AadstsError => {
    ctx.log(`[entra] OIDC discovery for issuer '${iss}' failed: ${reason}`);
    return aadsts(50166);
  };

  const fetchJson = async (iss: string, what: string, url: string): Promise<unknown> => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw fail50166(iss, `${what} URL '${url}' is not a URL`);
    }
    const httpOk = parsed.protocol === "https:" || (parsed.protocol === "http:" && state.options.entra.allowHttpIssuer);
    if (!httpOk) throw fail50166(iss, `${what} URL '${url}' is not https`);
    // Every exchange asks the issuer again (jwksCacheTtlS 0: Entra's caching is unconfirmed, and a
    // key published or withdrawn must count at the next exchange), but conditionally: with the
    // ETag of the last answer, the host answers 304 when the document is unchanged, and a 200
    // with the same bytes is not parsed again. The host sees one GET per document per exchange
    // either way, and the keys used are always those the host serves at that moment; only the
    // cost of reading unchanged bytes (and of importing unchanged keys) is saved.
    const known = fetched.get(url);
    const headers: Record<string, string> = { accept: "application/json" };
    if (known?.etag) headers["if-none-match"] = known.etag;
    let res: Response;
    try {
      res = await fetch(parsed, { headers, signal: AbortSignal.timeout(OIDC_FETCH_TIMEOUT_MS) });
    } catch (err) {
      throw fail50166(iss, `GET ${url}: ${(err as Error).message}`);
    }
    if (res.status === 304 && known) {
      await res.body?.cancel();
      return known.json;
    }
    const text = await res.text().catch(() => undefined);
    if (!res.ok) {
      fetched.delete(url);
      throw fail50166(iss, `GET ${url}: HTTP ${res.status}`);
    }
    const etag = res.headers.get("etag") ?? undefined;
    if (known && text === known.text) {
      known.etag = etag;
      return known.json;
    }
    let json: unknown;
    try {
      json = JSON.parse(text ?? "");
    } catch {
      fetched.delete(url);
      throw fail50166(iss, `GET ${url}: the body is not JSON`);
    }
    fetched.set(url, { etag, text: text ?? "", json });
    return json;
  };

  /** The public key of a JWKS entry, imported once per entry object. */
  const importedKey = (entry: object, rsa: { n: string; e: string }): ReturnType<typeof jose.importJWK> => {
    const known = importedKeys.get(entry);
    if (known) return known;
    const key = jose.importJWK({ kty: "RSA", n: rsa.n, e: rsa.e }, "RS256");
    importedKeys.set(entry, key);
    return key;
  };

  /** The first 100 JWKS entries of `iss`, fetched through its discovery document or from the TTL cache. */
  const loadIssuerKeys = async (iss: string): Promise<unknown[]> => {
    const ttlMs = state.options.entra.jwksCacheTtlS * 1000;
    const cached = issuerKeys.get(iss);
    if (cached && ttlMs > 0 && state.now() < cached.fetchedAtMs + ttlMs) return cached.keys;
    const discoveryUrl = `${iss.endsWith("/") ? iss.slice(0, -1) : iss}/.well-known/openid-configuration`;
    const discovery = await fetchJson(iss, "discovery", discoveryUrl) as { issuer?: unknown; jwks_uri?: unknown } | null;
    if (!discovery || typeof discovery !== "object") throw fail50166(iss, "the discovery document is not a JSON object");
    if (discovery.issuer !== iss) throw fail50166(iss, `the discovery document names issuer '${String(discovery.issuer)}'`);
    if (typeof discovery.jwks_uri !== "string") throw fail50166(iss, "the discovery document has no jwks_uri");
    const jwks = await fetchJson(iss, "jwks_uri", discovery.jwks_uri) as { keys?: unknown } | null;
    if (!jwks || typeof jwks !== "object" || !Array.isArray(jwks.keys)) throw fail50166(iss, "the JWKS has no 'keys' array");
    const entry = { keys: jwks.keys.slice(0, MAX_JWKS_KEYS), fetchedAtMs: state.now() };
    issuerKeys.set(iss, entry);
    return entry.keys;
  };

  // ---- the token endpoints

  const readForm = (rc: RouteContext): URLSearchParams => {
    // Entra reads form-urlencoded bodies only; any other body counts as no parameters at all.
    const type = (rc.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type && type !== "application/x-www-form-urlencoded") return new URLSearchParams();
    return new URLSearchParams(rc.text());
  };

  /** A UAMI's FICs (ARM resources) or an app registration's (Graph objects), in one shape. */
  type Fic = { issuer: unknown; subject: unknown; audiences: unknown; createdAtMs: number };
  const uamiFics = (identity: ArmResource): Fic[] =>
    state.federatedCredentialsOf(identity.id).map((f) => ({ ...f.properties, createdAtMs: f.createdAtMs }) as Fic);

  // The same rules for both (docs/azure-behaviour.md §2.2): exact, case-sensitive, issuer → audience → subject.
  const matchFederatedCredential = (fics: Fic[], iss: string, sub: string, aud: string[]): Fic => {
    const byIssuer = fics.filter((f) => f.issuer === iss);
    if (byIssuer.length === 0) throw aadsts(700211, iss);
    const byAudience = byIssuer.filter((f) => {
      const audiences = f.audiences;
      return Array.isArray(audiences) && aud.includes(String(audiences[0]));
    });
    if (byAudience.length === 0) throw aadsts(700212, aud.join(","));
    const match = byAudience.find((f) => f.subject === sub);
    if (match) return match;
    if (byAudience.some((f) => String(f.subject ?? "").toLowerCase() === sub.toLowerCase())) throw aadsts(7002138, sub);
    if (state.options.entra.legacyMismatchError) throw aadsts(70021, iss, sub, aud.join(","));
    throw aadsts(700213, sub);
  };

  const token = (version: "v1" | "v2") => async (rc: RouteContext): Promise<Reply> => {
    const opts = state.options.entra;
    const form = readForm(rc);
    const field = (name: string) => form.get(name) ?? "";
    if (USER_GRANTS.includes(field("grant_type"))) return await users.userGrant(rc, version, form);

    // 1. The form, the tenant, the client and the resource.
    const assertion = field("client_assertion");
    if (!assertion && !field("client_secret")) throw aadsts(7000218);
    if (field("grant_type") !== GRANT_CLIENT_CREDENTIALS) throw aadsts(900144, "grant_type");
    if (!field("client_id")) throw aadsts(900144, "client_id");
    if (assertion && field("client_assertion_type") !== ASSERTION_TYPE_JWT_BEARER) throw aadsts(900144, "client_assertion_type");
    let resource: string;
    if (version === "v2") {
      if (form.has("resource")) throw aadsts(901002);
      const scope = field("scope");
      const scopes = scope.split(/\s+/).filter(Boolean);
      if (scopes.length === 0) throw aadsts(900144, "scope");
      const bad = scopes.find((s) => !s.endsWith("/.default"));
      if (bad !== undefined) throw aadsts(1002012, bad);
      const resources = scopes.map(_resourceOfScope);
      if (new Set(resources.map(_normResource)).size > 1) throw aadsts(700022, scope);
      resource = resources[0];
    } else {
      resource = field("resource");
      if (!resource) throw aadsts(900144, "resource");
    }
    const tenant = findTenant(rc.params.tenant);
    if (!tenant) throw aadsts(90002, rc.params.tenant);
    const clientId = field("client_id");
    // The client is a UAMI of the tenant, or an app registration with a service principal in it.
    const uami = state.findIdentityByClientId(clientId);
    const identityTenant = String(uami?.properties.tenantId ?? uami?.tenantId ?? "").toLowerCase();
    const identity = uami && identityTenant === tenant.tenantId.toLowerCase() ? uami : undefined;
    const app = identity ? undefined : appDirectory(state).byAppId(clientId, tenant.tenantId);
    if (!identity && !app) throw aadsts(700016, clientId, tenant.displayName);
    const servicePrincipal = app ? appDirectory(state).servicePrincipalOf(app.appId, tenant.tenantId) : undefined;
    if (app && !servicePrincipal) throw aadsts(7000229, clientId, tenant.tenantId);
    if (!KNOWN_RESOURCE_SET.has(_normResource(resource))) throw aadsts(500011, resource, tenant.displayName);
    // A managed identity has no secrets: only the federated assertion can authenticate it.
    if (!assertion) throw aadsts(7000215, clientId);

    // 2. The assertion is a JWT, from a non-Entra issuer.
    let header: jose.ProtectedHeaderParameters;
    let claims: jose.JWTPayload;
    try {
      header = jose.decodeProtectedHeader(assertion);
      claims = jose.decodeJwt(assertion);
    } catch (err) {
      throw aadsts(50027, `The assertion is not a well-formed JWT (${(err as Error).message}).`);
    }
    const iss = claims.iss;
    if (typeof iss !== "string" || !iss) throw aadsts(50027, "The assertion has no 'iss' claim.");
    for (const c of ["exp", "iat", "nbf"] as const) {
      if (claims[c] !== undefined && typeof claims[c] !== "number") throw aadsts(50027, `The assertion's '${c}' claim is not a number.`);
    }
    if (claims.exp === undefined) throw aadsts(50027, "The assertion has no 'exp' claim.");
    const exp = claims.exp;
    if (_isEntraIssuer(iss, base())) throw aadsts(700222);

    // 3. Lifetime cap; a missing iat counts as 0 (docs/azure-behaviour.md §2.3: "Token issued at 0").
    const iat = claims.iat ?? 0;
    if (exp - iat > MAX_ASSERTION_LIFETIME_S) throw aadsts(70023, iat, exp);

    // 4. A federated credential of the identity matches issuer, audience and subject exactly.
    const sub = typeof claims.sub === "string" ? claims.sub : "";
    const aud = (Array.isArray(claims.aud) ? claims.aud : [claims.aud ?? ""]).map(String);
    const fic = matchFederatedCredential(identity ? uamiFics(identity) : app!.fics, iss, sub, aud);
    if (state.now() - fic.createdAtMs < opts.ficPropagationDelayMs) throw aadsts(70021, iss, sub, aud.join(","));

    // 5. The issuer's discovery document and JWKS.
    const jwks = await loadIssuerKeys(iss);

    // 6. The signing key and the signature.
    const kid = typeof header.kid === "string" ? header.kid : "";
    const entry = jwks.find((k): k is Record<string, unknown> => !!k && typeof k === "object" && (k as { kid?: unknown }).kid === kid);
    const rsa = entry && _usableRsaKey(entry, opts.lenientJwks);
    if (!rsa) throw aadsts(7000272, kid, iss);
    if (header.alg !== "RS256") throw aadsts(700027);
    const bits = _modulusBits(rsa.n);
    if (bits < MIN_RSA_MODULUS_BITS) throw aadsts(50032, kid, bits);
    try {
      let seen = verified.get(entry);
      if (!seen?.has(assertion)) {
        const key = await importedKey(entry, rsa);
        await jose.compactVerify(assertion, key, { algorithms: ["RS256"] });
        if (!seen || seen.size >= 1000) verified.set(entry, seen = new Set());
        seen.add(assertion);
      }
    } catch {
      throw aadsts(700027);
    }

    // 7. The time window, with skew; then the optional single use of jti.
    const nowMs = state.now();
    const nowS = nowMs / 1000;
    const skewS = opts.clockSkewS;
    const nbf = claims.nbf;
    if (nowS >= exp + skewS || (nbf !== undefined && nowS < nbf - skewS)) throw aadsts(700024, nowMs, nbf ?? iat, exp);
    if (opts.singleUseJti && typeof claims.jti === "string") {
      for (const [k, until] of usedJtis) if (until + skewS < nowS) usedJtis.delete(k);
      const key = `${iss}\n${claims.jti}`;
      if (usedJtis.has(key)) throw aadsts(50027, `The assertion with jti '${claims.jti}' has already been used.`);
      usedJtis.set(key, exp);
    }

    // 8. The access token: the managed identity's, or the app's (oid = its service principal).
    const { token: accessToken, claims: issued } = await tokens.issue({
      tenantId: tenant.tenantId,
      audience: resource,
      objectId: identity ? String(identity.properties.principalId ?? "") : servicePrincipal!.id,
      appId: identity ? String(identity.properties.clientId ?? clientId) : app!.appId,
      idtyp: "app",
      lifetimeS: identity ? opts.managedIdentityTokenLifetimeS : opts.appTokenLifetimeS,
      grant: "client_assertion",
      ...(identity ? { extraClaims: { xms_mirid: identity.id } } : {}),
      assertion: { iss, sub, kid, ...(typeof claims.jti === "string" ? { jti: claims.jti } : {}) },
    });
    const expiresIn = Number(issued.exp) - Math.floor(state.now() / 1000);
    const headers = traceHeaders(rc, correlationIdOf(rc));
    if (version === "v2") {
      return { status: 200, headers, body: { token_type: "Bearer", expires_in: expiresIn, ext_expires_in: expiresIn, access_token: accessToken } };
    }
    return {
      status: 200,
      headers,
      body: {
        token_type: "Bearer",
        expires_in: String(expiresIn),
        ext_expires_in: String(expiresIn),
        expires_on: String(issued.exp),
        not_before: String(issued.nbf),
        resource,
        access_token: accessToken,
      },
    };
  };

  return {
    name: "entra",
    routes: [
      { method: "GET", path: "/:tenant/v2.0/.well-known/openid-configuration", handler: entraRoute(openIdConfigurationV2) },
      { method: "GET", path: "/:tenant/.well-known/openid-configuration", handler: entraRoute(openIdConfigurationV1) },
      { method: "GET", path: "/:tenant/discovery/v2.0/keys", handler: entraRoute(keys) },
      { method: "GET", path: "/:tenant/discovery/keys", handler: entraRoute(keys) },
      { method: "POST", path: "/:tenant/oauth2/v2.0/token", handler: entraRoute(token("v2")) },
      { method: "POST", path: "/:tenant/oauth2/token", handler: entraRoute(token("v1")) },
      ...users.routes.map((r) => ({ ...r, handler: entraRoute(r.handler) })),
    ],
    notFound: (rc, allowed) => {
      if (allowed.length) {
        const allow = [...new Set(allowed)].join(", ");
        const reply = errorReply(rc, state.now(), aadsts(900561, allow, rc.method));
        return { ...reply, headers: { ...reply.headers, Allow: allow } };
      }
      const { headers, body } = errorBody(rc, state.now(), "not_found", `The Entra endpoint '${rc.url.pathname}' does not exist.`, []);
      return { status: 404, headers, body };
    },
    faultReply: (rc, status) => {
      const error = status === 429 ? "temporarily_unavailable" : status >= 500 ? "server_error" : "invalid_request";
      const { headers, body } = errorBody(rc, state.now(), error, `The service answered HTTP ${status} (injected fault).`, []);
      return { status, headers, body };
    },
  };
}
