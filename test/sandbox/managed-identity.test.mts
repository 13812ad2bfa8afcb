// The emulated managed identity endpoint of the ISV's compute (docs/azure-behaviour.md §7), App Service
// style (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01) through Microsoft's own
// ManagedIdentityCredential, and the wire rules of both styles with raw fetch: the secret header,
// IMDS's Metadata header and probe answer, identity selectors, resources, all-string IMDS bodies.
// (IMDS through the SDK is in managed-identity-imds.test.mts: MSAL fixes the source per process.)
import { ManagedIdentityCredential } from "@azure/identity";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox({ azurite: false });
const mi = sb.world.isv.managedIdentity!;
const VAULT = "https://vault.azure.net";

const T = suite("managed identity endpoint");

T("the sandbox env names the endpoint the way App Service does", () => {
  assert.is(sb.env.IDENTITY_ENDPOINT, `${sb.endpoints.managedIdentity}/msi/token`);
  assert.match(sb.env.IDENTITY_HEADER, /^[0-9a-f]{32}$/);
  assert.ok(mi.principalId && mi.clientId && mi.resourceId);
});

T("ManagedIdentityCredential (App Service source) gets a token of the ISV's identity from the sandbox's Entra", async () => {
  process.env.IDENTITY_ENDPOINT = sb.env.IDENTITY_ENDPOINT;
  process.env.IDENTITY_HEADER = sb.env.IDENTITY_HEADER;
  const credential = new ManagedIdentityCredential();
  const token = await credential.getToken(`${VAULT}/.default`);
  assert.ok(token?.token);
  assert.ok(token.expiresOnTimestamp > Date.now() + 3600_000);
  const claims = jose.decodeJwt(token.token);
  assert.is(claims.aud, VAULT);
  assert.is(claims.tid, sb.world.isv.tenantId);
  assert.is(claims.oid, mi.principalId);
  assert.is(claims.appid, mi.clientId);
  assert.is(claims.xms_mirid, mi.resourceId);
  // Verifiable against the tenant's published keys, like every sandbox token.
  const jwks = jose.createLocalJWKSet(await (await fetch(`${sb.endpoints.entra}/${sb.world.isv.tenantId}/discovery/v2.0/keys`)).json());
  await jose.jwtVerify(token.token, jwks);
  const issued = await admin<Array<{ grant: string; oid: string }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.grant === "app-service" && t.oid === mi.principalId));
  const byClientId = await new ManagedIdentityCredential({ clientId: mi.clientId }).getToken("https://management.azure.com/.default");
  assert.is(jose.decodeJwt(byClientId.token).aud, "https://management.azure.com");
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(sb.endpoints.managedIdentity + path, { headers });
  return { status: res.status, json: await res.json().catch(() => undefined) as any };
};
const appService = (query: string, secret = sb.env.IDENTITY_HEADER) => get(`/msi/token?${query}`, { "X-IDENTITY-HEADER": secret });
const imds = (query: string, headers: Record<string, string> = { Metadata: "true" }) => get(`/metadata/identity/oauth2/token?${query}`, headers);

T("App Service: a wrong or missing X-IDENTITY-HEADER is 401; expires_on is epoch seconds as a string", async () => {
  assert.is((await appService(`api-version=2019-08-01&resource=${VAULT}`, "wrong")).status, 401);
  assert.is((await get(`/msi/token?api-version=2019-08-01&resource=${VAULT}`)).status, 401);
  const ok = await appService(`api-version=2019-08-01&resource=${VAULT}`);
  assert.is(ok.status, 200);
  assert.match(ok.json.expires_on, /^\d{10}$/);
  assert.is(ok.json.token_type, "Bearer");
  assert.is(ok.json.resource, VAULT);
  // (2017-09-01, with its `secret` header, is test/sandbox/signin.test.mts)
  assert.is((await appService(`api-version=2018-01-01&resource=${VAULT}`)).status, 400);
});

T("IMDS: the bare probe (no Metadata, no query) gets an HTTP answer; Metadata: true is required", async () => {
  const probe = await get("/metadata/identity/oauth2/token");
  assert.is(probe.status, 400);
  assert.is(probe.json.error_description, "Required metadata header not specified");
  const noMeta = await imds(`api-version=2018-02-01&resource=${VAULT}`, {});
  assert.is(noMeta.status, 400);
});

T("IMDS: every value is a string; selectors must name the ISV's identity", async () => {
  const ok = await imds(`api-version=2018-02-01&resource=${VAULT}`);
  assert.is(ok.status, 200);
  for (const k of ["access_token", "refresh_token", "expires_in", "expires_on", "not_before", "resource", "token_type"]) {
    assert.type(ok.json[k], "string", k);
  }
  assert.is(ok.json.refresh_token, "");
  assert.ok(Number(ok.json.expires_in) > 86000);
  for (const sel of [`client_id=${mi.clientId}`, `object_id=${mi.principalId}`, `msi_res_id=${encodeURIComponent(mi.resourceId)}`]) {
    assert.is((await imds(`api-version=2018-02-01&resource=${VAULT}&${sel}`)).status, 200, sel);
  }
  const other = await imds(`api-version=2018-02-01&resource=${VAULT}&client_id=00000000-0000-0000-0000-000000000001`);
  assert.is(other.status, 400);
  assert.is(other.json.error_description, "Identity not found");
});

T("unknown resource, missing resource, missing api-version: 400", async () => {
  const unknown = await imds("api-version=2018-02-01&resource=https://nothing.example");
  assert.is(unknown.status, 400);
  assert.is(unknown.json.error, "invalid_resource");
  assert.is((await imds("api-version=2018-02-01")).status, 400);
  assert.is((await imds(`resource=${VAULT}`)).status, 400);
});

T.after(() => sb.stop());
T.run();
