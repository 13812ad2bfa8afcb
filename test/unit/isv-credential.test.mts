import { suite } from "uvu";
import * as assert from "uvu/assert";
import { generateKeyPair, SignJWT } from "jose";
import { ARM_SCOPE, createIsvCredential, getSignedInObjectId, getSignedInPrincipal } from "../../lib/identity/isv-credential.mts";
import { MeteringError } from "../../lib/core/errors.mts";
import { readSettings } from "../../lib/core/settings.mts";

const key = (await generateKeyPair("RS256")).privateKey;
const token = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(key);

const oid = suite("getSignedInObjectId()");
oid("returns the oid claim of the ARM token, asked for the ARM scope", async () => {
  const scopes: unknown[] = [];
  const t = await token({ oid: "8a7e726f-af43-4b4a-a882-b5477900bbb2", aud: "https://management.azure.com/" });
  const credential = { getToken: async (s: string | string[]) => { scopes.push(s); return { token: t, expiresOnTimestamp: Date.now() + 3_600_000 }; } };
  assert.is(await getSignedInObjectId({ credential }), "8a7e726f-af43-4b4a-a882-b5477900bbb2");
  assert.equal(scopes, [ARM_SCOPE]);
});
oid("getSignedInPrincipal: a person is User, a service principal or managed identity is ServicePrincipal (idtyp; scp when idtyp is absent)", async () => {
  const of = async (claims: Record<string, unknown>) => {
    const t = await token({ oid: "8a7e726f-af43-4b4a-a882-b5477900bbb2", ...claims });
    return (await getSignedInPrincipal({ credential: { getToken: async () => ({ token: t, expiresOnTimestamp: 0 }) } })).principalType;
  };
  assert.is(await of({ idtyp: "user", scp: "user_impersonation" }), "User");
  assert.is(await of({ idtyp: "app", roles: [] }), "ServicePrincipal");
  assert.is(await of({ scp: "user_impersonation" }), "User");
  assert.is(await of({ appid: "x" }), "ServicePrincipal");
  assert.is(await of({ idtyp: "user" }), "User");
});
oid("a token without oid is an error that says so", async () => {
  const t = await token({ aud: "x" });
  try {
    await getSignedInObjectId({ credential: { getToken: async () => ({ token: t, expiresOnTimestamp: 0 }) } });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, MeteringError);
    assert.match((err as Error).message, /no oid claim/);
  }
});
oid("a failing credential becomes one line that suggests az login, with the cause kept", async () => {
  const cause = new Error("AzureCliCredential: Please run 'az login'\nmore detail");
  try {
    await getSignedInObjectId({ credential: { getToken: async () => { throw cause; } } });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, MeteringError);
    assert.not.match((err as Error).message, /more detail/);
    assert.match((err as Error).message, /az login/);
    assert.is((err as Error).cause, cause);
  }
});
oid.run();

const create = suite("createIsvCredential()");
create("returns a TokenCredential without touching the network", async () => {
  const credential = await createIsvCredential({ settings: readSettings({ METERING_DISABLE_INSTANCE_DISCOVERY: "true" }) });
  assert.type(credential.getToken, "function");
});
create.run();

const fallback = suite("withFallback() / managedIdentitySource()");
const unavailable = (name: string) => Object.assign(new Error(`${name} unavailable`), { name: "CredentialUnavailableError" });
const good = { getToken: async () => ({ token: "t", expiresOnTimestamp: 1 }) };
fallback("falls back when the primary is unavailable, also inside an AggregateAuthenticationError", async () => {
  const { withFallback } = await import("../../lib/identity/isv-credential.mts");
  assert.is((await withFallback({ getToken: async () => { throw unavailable("az"); } }, good).getToken("s"))?.token, "t");
  const aggregate = Object.assign(new Error("chain"), { name: "AggregateAuthenticationError", errors: [unavailable("az")] });
  assert.is((await withFallback({ getToken: async () => { throw aggregate; } }, good).getToken("s"))?.token, "t");
});
fallback("a real failure of the primary is not hidden; a failing fallback reports both", async () => {
  const { withFallback } = await import("../../lib/identity/isv-credential.mts");
  const real = Object.assign(new Error("AADSTS700016"), { name: "AuthenticationError" });
  try {
    await withFallback({ getToken: async () => { throw real; } }, good).getToken("s");
    assert.unreachable();
  } catch (e) {
    assert.is(e, real);
  }
  try {
    await withFallback({ getToken: async () => { throw unavailable("az"); } }, { getToken: async () => { throw new Error("IMDS down"); } }).getToken("s");
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /az unavailable.*managed identity fallback failed too: IMDS down/);
  }
});
fallback("sources as @azure/identity picks them", async () => {
  const managedIdentitySource = (env: Record<string, string>) => readSettings(env).managedIdentitySource;
  assert.is(managedIdentitySource({ IDENTITY_ENDPOINT: "http://x", IDENTITY_HEADER: "h" }), "App Service");
  assert.is(managedIdentitySource({ IDENTITY_ENDPOINT: "http://x", IMDS_ENDPOINT: "http://y" }), "Azure Arc");
  assert.is(managedIdentitySource({ MSI_ENDPOINT: "http://x" }), "Cloud Shell");
  assert.is(managedIdentitySource({ AZURE_POD_IDENTITY_AUTHORITY_HOST: "http://x" }), "IMDS");
  assert.is(managedIdentitySource({}), undefined);
});
fallback("createIsvCredential adds the fallback only where AZURE_TOKEN_CREDENTIALS left the managed identity out", async () => {
  const { createIsvCredential } = await import("../../lib/identity/isv-credential.mts");
  const { DefaultAzureCredential } = await import("@azure/identity");
  const mi = { IDENTITY_ENDPOINT: "http://127.0.0.1:1/msi/token", IDENTITY_HEADER: "h" };
  assert.instance(await createIsvCredential({ settings: readSettings({ ...mi }) }), DefaultAzureCredential);
  assert.instance(await createIsvCredential({ settings: readSettings({ ...mi, AZURE_TOKEN_CREDENTIALS: "prod" }) }), DefaultAzureCredential);
  assert.instance(await createIsvCredential({ settings: readSettings({ AZURE_TOKEN_CREDENTIALS: "AzureCliCredential" }) }), DefaultAzureCredential);
  assert.not.instance(await createIsvCredential({ settings: readSettings({ ...mi, AZURE_TOKEN_CREDENTIALS: "AzureCliCredential" }) }), DefaultAzureCredential);
});
fallback.run();
