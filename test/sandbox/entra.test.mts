// The emulated Entra ID: tenant metadata MSAL accepts, and the client-assertion exchange for a
// user-assigned managed identity, driven with @azure/identity and with plain fetch. Issuer
// documents live in Azurite, written with @azure/storage-blob; keys are made at run time.
import { createServer } from "node:http";
import { createHash, randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as jose from "jose";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { ClientAssertionCredential } from "@azure/identity";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";
import { DEFAULT_OPTIONS } from "../../sandbox/core/state.mts";
import type { IssuedTokenRecord } from "../../sandbox/core/tokens.mts";

const sb = await startTestSandbox();
const METERING = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const EXCHANGE_AUD = "api://AzureADTokenExchange";
const SUBJECT = "system:serviceaccount:metering:biller";
const customer = sb.world.customers[0];
const otherCustomer = sb.world.customers[1];
const blobService = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));

// ---------------------------------------------------------------- helpers

interface TestKey {
  kid: string;
  publicJwk: jose.JWK;
  privateKey: CryptoKey;
  /** Signed with Web Crypto directly (jose refuses keys under 2048 bits). */
  weak?: boolean;
}

async function newKey(kid = `k-${randomUUID().slice(0, 8)}`, alg = "RS256"): Promise<TestKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...await jose.exportJWK(publicKey), kid, use: "sig", alg };
  return { kid, publicJwk, privateKey: privateKey as CryptoKey };
}

/** jose refuses RSA keys under 2048 bits, so the weak key is made and used with Web Crypto directly. */
async function newWeakKey(kid: string): Promise<TestKey> {
  const algorithm = { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
  const pair = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as CryptoKeyPair;
  const { kty, n, e } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  return { kid, publicJwk: { kty, n, e, kid, use: "sig", alg: "RS256" }, privateKey: pair.privateKey, weak: true };
}

const nowS = () => Math.floor(sb.state.now() / 1000);

interface SignOptions {
  claims?: Record<string, unknown>;
  /** Claims to leave out of the defaults. */
  omit?: string[];
  header?: Record<string, unknown>;
}

/** A client assertion for `iss`, signed by `key`; times follow the sandbox clock. */
async function sign(key: TestKey, iss: string, o: SignOptions = {}): Promise<string> {
  const t = nowS();
  const claims: Record<string, unknown> = { iss, sub: SUBJECT, aud: EXCHANGE_AUD, iat: t, nbf: t, exp: t + 600, jti: randomUUID(), ...o.claims };
  for (const c of o.omit ?? []) delete claims[c];
  const header = { typ: "JWT", alg: key.publicJwk.alg ?? "RS256", kid: key.kid, ...o.header };
  if (key.weak) {
    const input = `${jose.base64url.encode(JSON.stringify(header))}.${jose.base64url.encode(JSON.stringify(claims))}`;
    const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key.privateKey, new TextEncoder().encode(input));
    return `${input}.${jose.base64url.encode(new Uint8Array(sig))}`;
  }
  return await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader(header as jose.CompactJWSHeaderParameters)
    .sign(key.privateKey);
}

interface Issuer {
  iss: string;
  container: string;
  /** Replaces the published JWKS (key rotation). */
  setKeys(keys: unknown[]): Promise<void>;
}

interface IssuerOptions {
  keys?: unknown[];
  /** Container access; undefined = private. Default "blob" (anonymous reads). */
  access?: "blob" | "container" | undefined;
  trailingSlash?: boolean;
  /** The `issuer` the discovery document names; default the iss itself. */
  discoveryIssuer?: string;
  /** Publish no JWKS document. */
  noJwks?: boolean;
  /** Raw discovery document body instead of the JSON one. */
  discoveryBody?: string;
}

/** An OIDC issuer in Azurite: `{iss}/.well-known/openid-configuration` and `{iss}/jwks.json`. */
async function createIssuer(o: IssuerOptions = {}): Promise<Issuer> {
  const container = `iss-${randomUUID().slice(0, 12)}`;
  const cc = blobService.getContainerClient(container);
  const access = "access" in o ? o.access : "blob";
  await cc.create(access ? { access } : {});
  const base = `${sb.endpoints.blob}/${container}`;
  const iss = o.trailingSlash ? `${base}/` : base;
  const put = async (name: string, body: string) => {
    await cc.getBlockBlobClient(name).upload(body, new TextEncoder().encode(body).length, { blobHTTPHeaders: { blobContentType: "application/json" } });
  };
  await put(".well-known/openid-configuration", o.discoveryBody ?? JSON.stringify({
    issuer: o.discoveryIssuer ?? iss,
    jwks_uri: `${base}/jwks.json`,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
  }));
  const setKeys = (keys: unknown[]) => put("jwks.json", JSON.stringify({ keys }));
  if (!o.noJwks) await setKeys(o.keys ?? []);
  return { iss, container, setKeys };
}

interface Identity {
  id: string;
  clientId: string;
  principalId: string;
}

interface FicSpec {
  issuer: string;
  subject?: string;
  audience?: string;
  createdAtMs?: number;
}

/** A UAMI in the customer's MRG with its FICs, written straight into the ARM state. */
function createIdentity(fics: FicSpec[], c = customer): Identity {
  const name = `uami-${randomUUID().slice(0, 8)}`;
  const id = `/subscriptions/${c.subscriptionId}/resourceGroups/${c.managedResourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  const clientId = randomUUID();
  const principalId = randomUUID();
  const base = { tenantId: c.tenantId, subscriptionId: c.subscriptionId, resourceGroup: c.managedResourceGroup, location: "westeurope" };
  sb.state.putResource({
    ...base, id, name, type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    properties: { clientId, principalId, tenantId: c.tenantId }, createdAtMs: sb.state.now(),
  });
  fics.forEach((f, i) => {
    sb.state.putResource({
      ...base, id: `${id}/federatedIdentityCredentials/fed${i}`, name: `fed${i}`,
      type: "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
      properties: { issuer: f.issuer, subject: f.subject ?? SUBJECT, audiences: [f.audience ?? EXCHANGE_AUD] },
      createdAtMs: f.createdAtMs ?? sb.state.now() - 3_600_000,
    });
  });
  return { id, clientId, principalId };
}

interface TokenResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** POSTs a token request; `form` entries set to undefined are left out. */
async function postToken(form: Record<string, string | undefined>, o: { version?: "v1" | "v2"; tenant?: string; headers?: Record<string, string> } = {}): Promise<TokenResponse> {
  const path = o.version === "v1" ? "oauth2/token" : "oauth2/v2.0/token";
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) if (v !== undefined) body.set(k, v);
  const res = await fetch(`${sb.endpoints.entra}/${o.tenant ?? customer.tenantId}/${path}?client-request-id=${randomUUID()}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...o.headers },
    body,
  });
  return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> };
}

/** The form of a valid v2 request for the metering API; `extra` overrides fields. */
function v2Form(clientId: string, assertion: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    grant_type: "client_credentials",
    client_id: clientId,
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: assertion,
    scope: `${METERING}/.default`,
    ...extra,
  };
}

function v1Form(clientId: string, assertion: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return v2Form(clientId, assertion, { scope: undefined, resource: METERING, ...extra });
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Asserts Entra's error body (docs/azure-behaviour.md §2.6): status, error, error_codes, description with trace, correlation and timestamp. */
function assertAadsts(res: TokenResponse, status: number, error: string, code: number, message?: string | RegExp): string {
  const b = res.body;
  assert.is(res.status, status, `HTTP status of AADSTS${code}: ${JSON.stringify(b)}`);
  assert.is(b.error, error);
  assert.equal(b.error_codes, [code]);
  assert.match(String(b.trace_id), GUID);
  assert.match(String(b.correlation_id), GUID);
  assert.match(String(b.timestamp), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  assert.is(b.error_uri, `https://login.microsoftonline.com/error?code=${code}`);
  const desc = String(b.error_description);
  const suffix = ` Trace ID: ${b.trace_id} Correlation ID: ${b.correlation_id} Timestamp: ${b.timestamp}`;
  assert.ok(desc.startsWith(`AADSTS${code}: `), desc);
  assert.ok(desc.endsWith(suffix), desc);
  const text = desc.slice(`AADSTS${code}: `.length, desc.length - suffix.length);
  if (typeof message === "string") assert.is(text, message);
  else if (message) assert.match(text, message);
  return text;
}

async function withOptions<T>(entra: Partial<typeof DEFAULT_OPTIONS.entra>, fn: () => Promise<T>): Promise<T> {
  await admin(sb, "PATCH", "/options", { entra });
  try {
    return await fn();
  } finally {
    await admin(sb, "PATCH", "/options", { entra: DEFAULT_OPTIONS.entra });
  }
}

async function withClockOffset<T>(offsetMs: number, fn: () => Promise<T>): Promise<T> {
  await admin(sb, "POST", "/clock", { offsetMs });
  try {
    return await fn();
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
}

function assertSuccessV2(res: TokenResponse): string {
  assert.is(res.status, 200, JSON.stringify(res.body));
  return String(res.body.access_token);
}

const NM = "No matching federated identity record found for presented assertion";
const DOC_WIF = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

// One issuer with one key, and one identity trusting it, serve most tests.
const mainKey = await newKey("main-key");
const mainIssuer = await createIssuer({ keys: [mainKey.publicJwk] });
const mainIdentity = createIdentity([{ issuer: mainIssuer.iss }]);
const DEFAULT_SKEW_S = DEFAULT_OPTIONS.entra.clockSkewS;

// ---------------------------------------------------------------- metadata

const Metadata = suite("entra: tenant metadata");

Metadata("the v2 openid-configuration points at this service and its issuer shares the authority's origin", async () => {
  const res = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/v2.0/.well-known/openid-configuration`);
  assert.is(res.status, 200);
  const doc = await res.json() as Record<string, string>;
  const root = `${sb.endpoints.entra}/${customer.tenantId}`;
  assert.is(doc.token_endpoint, `${root}/oauth2/v2.0/token`);
  assert.is(doc.authorization_endpoint, `${root}/oauth2/v2.0/authorize`);
  assert.is(doc.jwks_uri, `${root}/discovery/v2.0/keys`);
  assert.is(doc.issuer, `${root}/v2.0`);
  assert.is(new URL(doc.issuer).origin, new URL(sb.endpoints.entra).origin);
});

Metadata("a tenant's <name>.onmicrosoft.com resolves to its id; the v1 document names the sts.windows.net issuer", async () => {
  const domain = sb.state.tenants.get(customer.tenantId)!.defaultDomain;
  const res = await fetch(`${sb.endpoints.entra}/${domain}/.well-known/openid-configuration`);
  assert.is(res.status, 200);
  const doc = await res.json() as Record<string, string>;
  assert.is(doc.token_endpoint, `${sb.endpoints.entra}/${customer.tenantId}/oauth2/token`);
  assert.is(doc.issuer, `https://sts.windows.net/${customer.tenantId}/`);
  assert.is(doc.jwks_uri, `${sb.endpoints.entra}/${customer.tenantId}/discovery/keys`);
});

Metadata("common and organizations answer with the {tenantid} placeholder issuer", async () => {
  for (const alias of ["common", "organizations"]) {
    const doc = await (await fetch(`${sb.endpoints.entra}/${alias}/v2.0/.well-known/openid-configuration`)).json() as Record<string, string>;
    assert.is(doc.issuer, `${sb.endpoints.entra}/{tenantid}/v2.0`);
    assert.is(doc.token_endpoint, `${sb.endpoints.entra}/${alias}/oauth2/v2.0/token`);
  }
});

Metadata("the keys endpoints serve the sandbox's signing keys", async () => {
  for (const path of ["discovery/v2.0/keys", "discovery/keys"]) {
    const res = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/${path}`);
    assert.is(res.status, 200);
    assert.equal(await res.json(), JSON.parse(JSON.stringify(sb.tokens.jwks())));
  }
});

Metadata("an unknown tenant's metadata is AADSTS90002", async () => {
  const res = await fetch(`${sb.endpoints.entra}/${randomUUID()}/v2.0/.well-known/openid-configuration`);
  const body = await res.json() as Record<string, unknown>;
  assertAadsts({ status: res.status, headers: res.headers, body }, 400, "invalid_tenant", 90002);
});

Metadata("unknown paths are 404 and wrong methods 405 with Allow, in Entra's error shape, never 200", async () => {
  const notFound = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/oauth2/v2.0/logout`);
  assert.is(notFound.status, 404);
  const nf = await notFound.json() as Record<string, unknown>;
  assert.is(nf.error, "not_found");
  assert.match(String(nf.trace_id), GUID);
  const get = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/oauth2/v2.0/token`);
  assert.is(get.status, 405);
  assert.is(get.headers.get("allow"), "POST");
  assertAadsts({ status: get.status, headers: get.headers, body: await get.json() as Record<string, unknown> }, 405, "invalid_request", 900561,
    "The endpoint only accepts POST requests. Received a GET request.");
  const post = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/v2.0/.well-known/openid-configuration`, { method: "POST" });
  assert.is(post.status, 405);
  assert.is(post.headers.get("allow"), "GET");
  await post.body?.cancel();
});

Metadata("a malformed percent-escape in the tenant segment is a 90002, not a crash", async () => {
  const res = await fetch(`${sb.endpoints.entra}/%E0%A4%A/v2.0/.well-known/openid-configuration`);
  assert.is(res.status, 400);
  assert.equal((await res.json() as { error_codes: number[] }).error_codes, [90002]);
});

Metadata("an injected fault answers in Entra's error shape", async () => {
  await admin(sb, "POST", "/faults", { service: "entra", route: "/:tenant/oauth2/v2.0/token", kind: "status", status: 503, retryAfter: 2 });
  const res = await postToken({});
  assert.is(res.status, 503);
  assert.is(res.headers.get("retry-after"), "2");
  assert.is(res.body.error, "server_error");
  assert.match(String(res.body.trace_id), GUID);
});

Metadata.run();

// ---------------------------------------------------------------- success

const Success = suite("entra: client assertion exchange");

Success("ClientAssertionCredential gets a metering token with the managed identity's claims, verifiable by the sandbox", async () => {
  const cred = new ClientAssertionCredential(customer.tenantId, mainIdentity.clientId, () => sign(mainKey, mainIssuer.iss),
    { authorityHost: sb.endpoints.entra, disableInstanceDiscovery: true });
  await admin(sb, "DELETE", "/requests");
  const t = await cred.getToken(`${METERING}/.default`);
  // MSAL caches the answer: a second getToken makes no token request.
  assert.is((await cred.getToken(`${METERING}/.default`)).token, t.token);
  const counters = await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
  assert.is(counters.entra["POST /:tenant/oauth2/v2.0/token"], 1);
  const lifetimeS = (t.expiresOnTimestamp - sb.state.now()) / 1000;
  assert.ok(lifetimeS > 86_000 && lifetimeS <= 86_400, `lifetime ${lifetimeS}`);
  const claims = await sb.tokens.verifyBearer(`Bearer ${t.token}`, [METERING]);
  assert.is(claims.aud, METERING);
  assert.is(claims.iss, `https://sts.windows.net/${customer.tenantId}/`);
  assert.is(claims.tid, customer.tenantId);
  assert.is(claims.oid, mainIdentity.principalId);
  assert.is(claims.appid, mainIdentity.clientId);
  assert.is(claims.idtyp, "app");
  assert.is(claims.xms_mirid, mainIdentity.id);
  const exp = Number(claims.exp), iat = Number(claims.iat);
  assert.ok(exp - nowS() > 86_000 && exp - nowS() <= 86_399, `exp in ${exp - nowS()} s`);
  assert.ok(exp - iat >= 86_399 && exp - iat <= 86_700);
});

Success("the admin API lists the issued token's claims", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope: "https://vault.azure.net/.default" }));
  const claims = await sb.tokens.verifyBearer(`Bearer ${assertSuccessV2(res)}`, ["https://vault.azure.net"]);
  const issued = await admin<IssuedTokenRecord[]>(sb, "GET", "/tokens");
  const rec = issued.find((r) => r.appid === mainIdentity.clientId && r.aud === "https://vault.azure.net");
  assert.ok(rec, JSON.stringify(issued));
  assert.is(rec!.tenantId, customer.tenantId);
  assert.is(rec!.oid, mainIdentity.principalId);
  assert.is(rec!.grant, "client_assertion");
  assert.is(rec!.xms_mirid, mainIdentity.id);
  assert.is(rec!.exp, claims.exp);
  assert.not.ok("access_token" in rec! || "token" in rec!);
});

Success("v2 answers numbers and no resource; v1 answers strings with expires_on, not_before and resource", async () => {
  const v2 = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss)));
  assert.is(v2.status, 200);
  assert.equal(Object.keys(v2.body).sort(), ["access_token", "expires_in", "ext_expires_in", "token_type"]);
  assert.is(v2.body.token_type, "Bearer");
  assert.is(v2.body.expires_in, 86399);
  assert.is(v2.body.ext_expires_in, 86399);
  assert.is(v2.headers.get("cache-control"), "no-store, no-cache");

  const v1 = await postToken(v1Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { resource: "https://management.azure.com/" }), { version: "v1" });
  assert.is(v1.status, 200, JSON.stringify(v1.body));
  assert.equal(Object.keys(v1.body).sort(), ["access_token", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"]);
  for (const k of ["expires_in", "ext_expires_in", "expires_on", "not_before"]) assert.type(v1.body[k], "string");
  assert.is(v1.body.expires_in, "86399");
  assert.is(v1.body.resource, "https://management.azure.com/");
  const claims = await sb.tokens.verifyBearer(`Bearer ${v1.body.access_token}`, ["https://management.azure.com/"]);
  assert.is(claims.aud, "https://management.azure.com/");
  assert.is(String(claims.exp), v1.body.expires_on);
  assert.is(String(claims.nbf), v1.body.not_before);
});

Success("the tenant can be named by domain; unknown form fields and query parameters are ignored", async () => {
  const domain = sb.state.tenants.get(customer.tenantId)!.defaultDomain;
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), {
    response_type: "token", "x-client-SKU": "test", "x-ms-lib-capability": "retry-after, h429", claims: "{}",
  }), { tenant: domain });
  const claims = await sb.tokens.verifyBearer(`Bearer ${assertSuccessV2(res)}`, [METERING]);
  assert.is(claims.tid, customer.tenantId);
});

Success("the scope's resource becomes aud as requested: Service Bus's literal // and the metering api:// form", async () => {
  const sbus = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope: "https://servicebus.azure.net//.default" }));
  assert.is(jose.decodeJwt(assertSuccessV2(sbus)).aud, "https://servicebus.azure.net/");
  const api = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope: `api://${METERING}/.default` }));
  assert.is(jose.decodeJwt(assertSuccessV2(api)).aud, `api://${METERING}`);
});

Success("a client-request-id header is echoed as the correlation id", async () => {
  const id = randomUUID();
  const res = await postToken({ grant_type: "client_credentials" }, { headers: { "client-request-id": id } });
  assert.is(res.body.correlation_id, id);
  assert.is(res.headers.get("client-request-id"), id);
});

Success("an assertion whose aud array contains the FIC audience matches", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { claims: { aud: ["other", EXCHANGE_AUD] } })));
  assertSuccessV2(res);
});

Success("an issuer with a trailing slash works when FIC, iss and discovery all carry it (no // in the discovery URL)", async () => {
  const key = await newKey();
  const issuer = await createIssuer({ keys: [key.publicJwk], trailingSlash: true });
  assert.ok(issuer.iss.endsWith("/"));
  const identity = createIdentity([{ issuer: issuer.iss }]);
  assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(key, issuer.iss))));
});

Success("an assertion lifetime of exactly 25 h is accepted", async () => {
  const t = nowS();
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { claims: { iat: t, exp: t + 25 * 3600 } })));
  assertSuccessV2(res);
});

Success.run();

// ---------------------------------------------------------------- form, tenant, client, resource (docs/azure-behaviour.md §2.7 step 1)

const Form = suite("entra: form and lookups");

Form("no client_assertion is AADSTS7000218 (400 invalid_request)", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, "", { client_assertion: undefined }));
  assertAadsts(res, 400, "invalid_request", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
});

Form("a non-form body counts as no parameters: 7000218, never a 500", async () => {
  for (const [type, body] of [["application/json", JSON.stringify({ grant_type: "client_credentials" })], ["application/x-www-form-urlencoded", "%%%&&==\u0000\xff"]]) {
    const res = await fetch(`${sb.endpoints.entra}/${customer.tenantId}/oauth2/v2.0/token`, { method: "POST", headers: { "content-type": type }, body });
    assertAadsts({ status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }, 400, "invalid_request", 7000218);
  }
});

Form("a wrong grant_type, a missing client_id or a wrong client_assertion_type is AADSTS900144 naming the parameter", async () => {
  const assertion = await sign(mainKey, mainIssuer.iss);
  // (password, refresh_token and the device code grant are the user sign-ins: test/sandbox/signin.test.mts)
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, assertion, { grant_type: "implicit" })), 400, "invalid_request", 900144,
    "The request body must contain the following parameter: 'grant_type'.");
  assertAadsts(await postToken(v2Form("", assertion, { client_id: undefined })), 400, "invalid_request", 900144,
    "The request body must contain the following parameter: 'client_id'.");
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, assertion, { client_assertion_type: "jwt" })), 400, "invalid_request", 900144,
    "The request body must contain the following parameter: 'client_assertion_type'.");
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, assertion, { scope: undefined })), 400, "invalid_request", 900144,
    "The request body must contain the following parameter: 'scope'.");
  assertAadsts(await postToken(v1Form(mainIdentity.clientId, assertion, { resource: undefined }), { version: "v1" }), 400, "invalid_request", 900144,
    "The request body must contain the following parameter: 'resource'.");
});

Form("resource on the v2 endpoint is AADSTS901002", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { resource: METERING }));
  assertAadsts(res, 400, "invalid_request", 901002, "The 'resource' request parameter isn't supported.");
});

Form("a scope without /.default is AADSTS1002012", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope: METERING }));
  assertAadsts(res, 400, "invalid_scope", 1002012,
    `The provided value for scope ${METERING} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
});

Form("two resources in one scope is AADSTS700022", async () => {
  const scope = `${METERING}/.default https://vault.azure.net/.default`;
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope }));
  assertAadsts(res, 400, "invalid_scope", 700022, new RegExp(`contains more than one resource\\. Scope ${scope.replace(/[./]/g, "\\$&")} is not valid\\.$`));
});

Form("an unknown tenant is AADSTS90002 (400 invalid_tenant)", async () => {
  const tenant = randomUUID();
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss)), { tenant });
  assertAadsts(res, 400, "invalid_tenant", 90002, new RegExp(`^Tenant '${tenant}' not found\\. Check to make sure you have the correct tenant ID`));
});

Form("an unknown client_id, or an identity of another tenant, is AADSTS700016 (400 unauthorized_client)", async () => {
  const unknown = randomUUID();
  const tenantName = sb.state.tenants.get(customer.tenantId)!.displayName;
  assertAadsts(await postToken(v2Form(unknown, await sign(mainKey, mainIssuer.iss))), 400, "unauthorized_client", 700016,
    new RegExp(`^Application with identifier '${unknown}' was not found in the directory '${tenantName}'\\. .*wrong tenant\\.$`));
  const foreign = createIdentity([{ issuer: mainIssuer.iss }], otherCustomer);
  assertAadsts(await postToken(v2Form(foreign.clientId, await sign(mainKey, mainIssuer.iss))), 400, "unauthorized_client", 700016);
  // The same identity works in its own tenant.
  assertSuccessV2(await postToken(v2Form(foreign.clientId, await sign(mainKey, mainIssuer.iss)), { tenant: otherCustomer.tenantId }));
});

Form("an unknown resource is AADSTS500011 (400 invalid_resource)", async () => {
  const tenantName = sb.state.tenants.get(customer.tenantId)!.displayName;
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { scope: "https://example.com/api/.default" }));
  assertAadsts(res, 400, "invalid_resource", 500011, new RegExp(`^The resource principal named https://example\\.com/api was not found in the tenant named ${tenantName}\\.`));
  const v1 = await postToken(v1Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss), { resource: "https://example.com/api" }), { version: "v1" });
  assertAadsts(v1, 400, "invalid_resource", 500011);
});

Form("a client_secret instead of an assertion is AADSTS7000215: a managed identity has no secrets", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, "", { client_assertion: undefined, client_assertion_type: undefined, client_secret: "s3cret" }));
  assertAadsts(res, 401, "invalid_client", 7000215);
});

Form.run();

// ---------------------------------------------------------------- the assertion (docs/azure-behaviour.md §2.7 steps 2–7)

const Assertion = suite("entra: assertion validation");

Assertion("a malformed assertion, or one without exp or iss, is AADSTS50027", async () => {
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, "not-a-jwt")), 401, "invalid_client", 50027, /^Invalid JWT token\. /);
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { omit: ["exp"] }))), 401, "invalid_client", 50027,
    "Invalid JWT token. The assertion has no 'exp' claim.");
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { omit: ["iss"] }))), 401, "invalid_client", 50027,
    "Invalid JWT token. The assertion has no 'iss' claim.");
});

Assertion("an Entra-issued assertion is AADSTS700222", async () => {
  for (const iss of [`https://sts.windows.net/${customer.tenantId}/`, `https://login.microsoftonline.com/${customer.tenantId}/v2.0`]) {
    const identity = createIdentity([{ issuer: iss }]);
    const res = await postToken(v2Form(identity.clientId, await sign(mainKey, iss)));
    assertAadsts(res, 401, "invalid_client", 700222, "AAD-issued tokens may not be used for federated identity flows.");
  }
});

Assertion("exp − iat over 25 h is AADSTS70023, checked before the FIC match; a missing iat counts as 0", async () => {
  const t = nowS();
  const long = await sign(mainKey, "https://nowhere.example/issuer", { claims: { iat: t, exp: t + 25 * 3600 + 1 } });
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, long)), 401, "invalid_client", 70023,
    `External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00. Token issued at ${t}. Token expires on ${t + 25 * 3600 + 1}.`);
  const noIat = await sign(mainKey, mainIssuer.iss, { omit: ["iat"] });
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, noIat)), 401, "invalid_client", 70023, /Token issued at 0\. /);
});

Assertion("an issuer no FIC names is AADSTS700211; a trailing slash and letter case are significant", async () => {
  for (const iss of ["https://other.example/issuer", `${mainIssuer.iss}/`, mainIssuer.iss.toUpperCase()]) {
    const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, iss)));
    assertAadsts(res, 401, "invalid_client", 700211,
      `${NM} issuer '${iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${DOC_WIF}`);
  }
});

Assertion("an audience the FIC does not name is AADSTS700212", async () => {
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { claims: { aud: "api://AzureADTokenExchange/" } })));
  assertAadsts(res, 401, "invalid_client", 700212,
    `${NM} audience 'api://AzureADTokenExchange/'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${DOC_WIF}`);
});

Assertion("a subject equal only ignoring case is AADSTS7002138", async () => {
  const sub = SUBJECT.toUpperCase();
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { claims: { sub } })));
  assertAadsts(res, 401, "invalid_client", 7002138,
    new RegExp(`^${NM} subject '${sub}'\\. The subject matches with case-insensitive comparison, but not with case-sensitive comparison\\. .*See breaking change notification and remediation at: https://learn\\.microsoft\\.com/entra/identity-platform/reference-breaking-changes#august-2024\\.$`));
});

Assertion("another subject is AADSTS700213, or the legacy 70021 with legacyMismatchError", async () => {
  const assertion = await sign(mainKey, mainIssuer.iss, { claims: { sub: "someone-else" } });
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, assertion)), 401, "invalid_client", 700213,
    `${NM} subject 'someone-else'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${DOC_WIF}`);
  await withOptions({ legacyMismatchError: true }, async () => {
    assertAadsts(await postToken(v2Form(mainIdentity.clientId, assertion)), 401, "invalid_client", 70021,
      `${NM}. Assertion Issuer: '${mainIssuer.iss}'. Assertion Subject: 'someone-else'. Assertion Audience: '${EXCHANGE_AUD}'. ${DOC_WIF}`);
  });
});

Assertion("a FIC younger than ficPropagationDelayMs is AADSTS70021 until the delay passes", async () => {
  const identity = createIdentity([{ issuer: mainIssuer.iss, createdAtMs: sb.state.now() }]);
  await withOptions({ ficPropagationDelayMs: 60_000 }, async () => {
    assertAadsts(await postToken(v2Form(identity.clientId, await sign(mainKey, mainIssuer.iss))), 401, "invalid_client", 70021, /^No matching federated identity record found for presented assertion\. Assertion Issuer: /);
    await withClockOffset(61_000, async () => {
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(mainKey, mainIssuer.iss))));
    });
  });
});

Assertion("the issuer's documents unreachable or inconsistent are AADSTS50166: private container, no JWKS, other discovery issuer, not JSON, closed port", async () => {
  const key = await newKey();
  const issuers = [
    await createIssuer({ keys: [key.publicJwk], access: undefined }),
    await createIssuer({ noJwks: true }),
    await createIssuer({ keys: [key.publicJwk], discoveryIssuer: "https://somebody.example/else" }),
    await createIssuer({ discoveryBody: "<html>not json</html>" }),
  ];
  const unreachable = "https://127.0.0.1:1/issuer";
  for (const iss of [...issuers.map((i) => i.iss), unreachable]) {
    const identity = createIdentity([{ issuer: iss }]);
    const res = await postToken(v2Form(identity.clientId, await sign(key, iss)));
    assertAadsts(res, 400, "invalid_request", 50166, "Request to External OIDC endpoint failed.");
  }
});

Assertion("a discovery issuer differing from a trailing-slash iss is AADSTS50166", async () => {
  const key = await newKey();
  const base = await createIssuer({ keys: [key.publicJwk] });
  // The document at {iss minus /}/.well-known names the iss without the slash.
  const iss = `${base.iss}/`;
  const identity = createIdentity([{ issuer: iss }]);
  assertAadsts(await postToken(v2Form(identity.clientId, await sign(key, iss))), 400, "invalid_request", 50166);
});

Assertion("an http issuer is AADSTS50166 unless allowHttpIssuer", async () => {
  const key = await newKey();
  const server = createServer((req, res) => {
    const iss = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const body = req.url === "/.well-known/openid-configuration" ? { issuer: iss, jwks_uri: `${iss}/jwks` } : { keys: [key.publicJwk] };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const iss = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const identity = createIdentity([{ issuer: iss }]);
    assertAadsts(await postToken(v2Form(identity.clientId, await sign(key, iss))), 400, "invalid_request", 50166);
    await withOptions({ allowHttpIssuer: true }, async () => {
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(key, iss))));
    });
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
});

Assertion("a kid the JWKS lacks is AADSTS7000272", async () => {
  const stranger = await newKey("stranger-kid");
  const res = await postToken(v2Form(mainIdentity.clientId, await sign(stranger, mainIssuer.iss)));
  assertAadsts(res, 401, "invalid_client", 7000272,
    `The certificate with identifier stranger-kid used to sign the federated credential could not be found in the metadata of identity provider ${mainIssuer.iss}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`);
});

Assertion("only the first 100 JWKS keys count: the key at index 99 works, at index 100 it is AADSTS7000272", async () => {
  const key = await newKey("the-key");
  const filler = (i: number) => ({ ...key.publicJwk, kid: `filler-${i}` });
  const at99 = await createIssuer({ keys: [...Array.from({ length: 99 }, (_, i) => filler(i)), key.publicJwk] });
  const at100 = await createIssuer({ keys: [...Array.from({ length: 100 }, (_, i) => filler(i)), key.publicJwk] });
  const ok = createIdentity([{ issuer: at99.iss }]);
  assertSuccessV2(await postToken(v2Form(ok.clientId, await sign(key, at99.iss))));
  const late = createIdentity([{ issuer: at100.iss }]);
  assertAadsts(await postToken(v2Form(late.clientId, await sign(key, at100.iss))), 401, "invalid_client", 7000272);
});

Assertion("a bad signature or an alg other than RS256 is AADSTS700027", async () => {
  const impostor = await newKey("main-key"); // same kid, different key
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, await sign(impostor, mainIssuer.iss))), 401, "invalid_client", 700027,
    "Client assertion failed signature validation.");
  const rs384 = await newKey("rs384", "RS384");
  const issuer = await createIssuer({ keys: [{ ...rs384.publicJwk, alg: undefined }] });
  const identity = createIdentity([{ issuer: issuer.iss }]);
  assertAadsts(await postToken(v2Form(identity.clientId, await sign(rs384, issuer.iss))), 401, "invalid_client", 700027);
});

Assertion("an RSA key under 2048 bits is AADSTS50032", async () => {
  const weak = await newWeakKey("weak");
  const issuer = await createIssuer({ keys: [weak.publicJwk] });
  const identity = createIdentity([{ issuer: issuer.iss }]);
  assertAadsts(await postToken(v2Form(identity.clientId, await sign(weak, issuer.iss))), 401, "invalid_client", 50032, /^WeakRsaKey: .*1024 bits/);
});

Assertion("JWKS keys without use, with padded standard-base64 n, or with another alg are refused (7000272); lenientJwks admits the first two", async () => {
  const key = await newKey("unused");
  const b64 = (s: string) => {
    const std = s.replace(/-/g, "+").replace(/_/g, "/");
    return std + "=".repeat((4 - std.length % 4) % 4);
  };
  const { n, e } = key.publicJwk as { n: string; e: string };
  const entries = {
    "no-use": { kty: "RSA", kid: "no-use", n, e },
    padded: { kty: "RSA", kid: "padded", use: "sig", n: b64(n), e: b64(e), issuer: "extra" },
    "other-alg": { kty: "RSA", kid: "other-alg", use: "sig", alg: "RS512", n, e },
  };
  assert.ok(entries.padded.n.endsWith("=") && entries.padded.n !== n);
  const issuer = await createIssuer({ keys: Object.values(entries) });
  const identity = createIdentity([{ issuer: issuer.iss }]);
  const signAs = (kid: string) => sign({ ...key, kid }, issuer.iss);
  for (const kid of Object.keys(entries)) {
    assertAadsts(await postToken(v2Form(identity.clientId, await signAs(kid))), 401, "invalid_client", 7000272);
  }
  await withOptions({ lenientJwks: true }, async () => {
    assertSuccessV2(await postToken(v2Form(identity.clientId, await signAs("no-use"))));
    assertSuccessV2(await postToken(v2Form(identity.clientId, await signAs("padded"))));
    assertAadsts(await postToken(v2Form(identity.clientId, await signAs("other-alg"))), 401, "invalid_client", 7000272);
  });
});

Assertion("an expired or not-yet-valid assertion is AADSTS700024 with .NET-style times; the skew is honoured", async () => {
  const t = nowS();
  const expired = await sign(mainKey, mainIssuer.iss, { claims: { iat: t - 1000, nbf: t - 1000, exp: t - DEFAULT_SKEW_S - 5 } });
  const text = assertAadsts(await postToken(v2Form(mainIdentity.clientId, expired)), 401, "invalid_client", 700024);
  const time = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{7}Z";
  assert.match(text, new RegExp(`^Client assertion is not within its valid time range\\. Current time: ${time}, assertion valid from ${time}, expiry time of assertion ${time}\\. Review the documentation at https://learn\\.microsoft\\.com/entra/identity-platform/certificate-credentials \\.$`));
  assert.ok(text.includes(`expiry time of assertion ${new Date((t - DEFAULT_SKEW_S - 5) * 1000).toISOString().replace(".000Z", ".0000000Z")}`), text);
  const early = await sign(mainKey, mainIssuer.iss, { claims: { nbf: t + DEFAULT_SKEW_S + 60, exp: t + DEFAULT_SKEW_S + 600 } });
  assertAadsts(await postToken(v2Form(mainIdentity.clientId, early)), 401, "invalid_client", 700024);
  const withinSkew = await sign(mainKey, mainIssuer.iss, { claims: { iat: t - 1000, exp: t - 60 } });
  assertSuccessV2(await postToken(v2Form(mainIdentity.clientId, withinSkew)));
  await withOptions({ clockSkewS: 0 }, async () => {
    assertAadsts(await postToken(v2Form(mainIdentity.clientId, await sign(mainKey, mainIssuer.iss, { claims: { iat: t - 1000, exp: t - 60 } }))), 401, "invalid_client", 700024);
  });
});

Assertion("a reused jti is refused (50027) only with singleUseJti", async () => {
  const assertion = await sign(mainKey, mainIssuer.iss);
  assertSuccessV2(await postToken(v2Form(mainIdentity.clientId, assertion)));
  assertSuccessV2(await postToken(v2Form(mainIdentity.clientId, assertion)));
  await withOptions({ singleUseJti: true }, async () => {
    const once = await sign(mainKey, mainIssuer.iss);
    assertSuccessV2(await postToken(v2Form(mainIdentity.clientId, once)));
    assertAadsts(await postToken(v2Form(mainIdentity.clientId, once)), 401, "invalid_client", 50027, /already been used/);
  });
});

Assertion("the AADSTS code surfaces through ClientAssertionCredential's error", async () => {
  const cred = new ClientAssertionCredential(customer.tenantId, mainIdentity.clientId, () => sign(mainKey, mainIssuer.iss, { claims: { sub: "intruder" } }),
    { authorityHost: sb.endpoints.entra, disableInstanceDiscovery: true });
  try {
    await cred.getToken(`${METERING}/.default`);
    assert.unreachable("getToken should have failed");
  } catch (err) {
    assert.not.instance(err, assert.Assertion);
    assert.match((err as Error).message, /AADSTS700213/);
  }
});

Assertion.run();

// ---------------------------------------------------------------- JWKS cache

const Cache = suite("entra: JWKS cache per issuer");

Cache("with jwksCacheTtlS a rotated key is unseen until the TTL passes on the sandbox clock", async () => {
  const oldKey = await newKey("old");
  const newer = await newKey("new");
  const issuer = await createIssuer({ keys: [oldKey.publicJwk] });
  const identity = createIdentity([{ issuer: issuer.iss }]);
  await withOptions({ jwksCacheTtlS: 600 }, async () => {
    assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
    await issuer.setKeys([newer.publicJwk]);
    assertAadsts(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))), 401, "invalid_client", 7000272);
    assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
    // A minute before the TTL ends: the exchanges since the JWKS was fetched took real time too.
    await withClockOffset(540_000, async () => {
      assertAadsts(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))), 401, "invalid_client", 7000272);
    });
    await withClockOffset(601_000, async () => {
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))));
      assertAadsts(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))), 401, "invalid_client", 7000272);
    });
  });
});

Cache("with a TTL of 0 every exchange fetches the JWKS, so a rotation is seen at once", async () => {
  const oldKey = await newKey("old");
  const newer = await newKey("new");
  const issuer = await createIssuer({ keys: [oldKey.publicJwk] });
  const identity = createIdentity([{ issuer: issuer.iss }]);
  assert.is(sb.state.options.entra.jwksCacheTtlS, 0);
  assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
  await issuer.setKeys([newer.publicJwk]);
  assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))));
  assertAadsts(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))), 401, "invalid_client", 7000272);
});

/** An http issuer that records each GET (path, If-None-Match, status) and serves `keys()`, with ETags when `etags`. */
async function recordingIssuer(keys: () => unknown[], o: { etags: boolean }) {
  const seen: Array<{ path: string; ifNoneMatch?: string; status: number }> = [];
  const server = createServer((req, res) => {
    const iss = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const body = JSON.stringify(req.url === "/.well-known/openid-configuration" ? { issuer: iss, jwks_uri: `${iss}/jwks` } : { keys: keys() });
    const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"`;
    const ifNoneMatch = req.headers["if-none-match"];
    const status = o.etags && ifNoneMatch === etag ? 304 : 200;
    seen.push({ path: req.url ?? "", ...(ifNoneMatch ? { ifNoneMatch } : {}), status });
    res.writeHead(status, { "content-type": "application/json", ...(o.etags ? { etag } : {}) }).end(status === 304 ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    iss: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

Cache("with a TTL of 0 each exchange asks again, conditionally: unchanged documents answer 304, a rotation counts at once", async () => {
  const oldKey = await newKey("old");
  const newer = await newKey("new");
  let published = [oldKey.publicJwk];
  const issuer = await recordingIssuer(() => published, { etags: true });
  try {
    const identity = createIdentity([{ issuer: issuer.iss }]);
    await withOptions({ allowHttpIssuer: true }, async () => {
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
      published = [newer.publicJwk];
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))));
      assertAadsts(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))), 401, "invalid_client", 7000272);
    });
    // Two GETs per exchange, always; the validator of the last answer is sent along.
    assert.equal(issuer.seen.map((r) => `${r.path} ${r.status}${r.ifNoneMatch ? " conditional" : ""}`), [
      "/.well-known/openid-configuration 200", "/jwks 200",
      "/.well-known/openid-configuration 304 conditional", "/jwks 304 conditional",
      "/.well-known/openid-configuration 304 conditional", "/jwks 200 conditional",
      "/.well-known/openid-configuration 304 conditional", "/jwks 304 conditional",
    ]);
  } finally {
    await issuer.close();
  }
});

Cache("an issuer without ETags is read in full on every exchange, and a changed JWKS counts at once", async () => {
  const oldKey = await newKey("old");
  const newer = await newKey("new");
  let published = [oldKey.publicJwk];
  const issuer = await recordingIssuer(() => published, { etags: false });
  try {
    const identity = createIdentity([{ issuer: issuer.iss }]);
    await withOptions({ allowHttpIssuer: true }, async () => {
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))));
      published = [newer.publicJwk];
      assertAadsts(await postToken(v2Form(identity.clientId, await sign(oldKey, issuer.iss))), 401, "invalid_client", 7000272);
      assertSuccessV2(await postToken(v2Form(identity.clientId, await sign(newer, issuer.iss))));
    });
    assert.is(issuer.seen.length, 8);
    assert.ok(issuer.seen.every((r) => r.status === 200 && r.ifNoneMatch === undefined), JSON.stringify(issuer.seen));
  } finally {
    await issuer.close();
  }
});

Cache.after(() => sb.stop());
Cache.run();
