// `az login --identity` of the real az (2.45: msrestazure's MSIAuthentication) on each managed
// identity endpoint style the sandbox serves and this az knows: IMDS at http://169.254.169.254
// (reached through the front over HTTP_PROXY), Cloud Shell's MSI_ENDPOINT, and App Service's
// 2017-09-01 MSI_ENDPOINT + MSI_SECRET. (IDENTITY_ENDPOINT/IDENTITY_HEADER, App Service's
// 2019-08-01, is not read by az 2.45: it came with MSAL's managed identity in az 2.61.)
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { az, azMissing, frontShellEnv, show, testOrSkip } from "../helpers/realclients.mts";

const FILE = import.meta.filename ?? "az-identity.test.mts";
const missing = azMissing();
const sb = await startTestSandbox();
const isv = sb.world.isv;
const mi = isv.managedIdentity!;

interface Issued { aud: string; oid?: string; grant: string; tenantId: string }

/** az login --identity, then a token for Key Vault; returns that token's claims. */
async function identityLogin(extra: Record<string, string>) {
  const env = await frontShellEnv(sb, extra);
  const login = await az(env, "login", "--identity", "--allow-no-subscriptions", "--output", "json");
  assert.is(login.code, 0, show(login));
  const t = await az(env, "account", "get-access-token", "--resource", "https://vault.azure.net", "--output", "json");
  assert.is(t.code, 0, show(t));
  return { accounts: JSON.parse(login.stdout), claims: jose.decodeJwt(JSON.parse(t.stdout).accessToken) };
}

const T = suite("real az: az login --identity");

testOrSkip(T, FILE, missing, "IMDS at http://169.254.169.254 through HTTP_PROXY: the ISV's managed identity, a tenant-level account (it holds no subscription role)", async () => {
  const before = (await admin<Issued[]>(sb, "GET", "/tokens")).length;
  const { accounts, claims } = await identityLogin({});
  assert.is(claims.oid, mi.principalId);
  assert.is(claims.aud, "https://vault.azure.net");
  assert.ok(accounts.some((a: { tenantId: string; user: { name: string; assignedIdentityInfo: string } }) =>
    a.tenantId === isv.tenantId && a.user.name === "systemAssignedIdentity" && a.user.assignedIdentityInfo === "MSI"), JSON.stringify(accounts));
  const issued = (await admin<Issued[]>(sb, "GET", "/tokens")).slice(before);
  assert.ok(issued.some((x) => x.oid === mi.principalId && x.aud === "https://management.core.windows.net/"), JSON.stringify(issued));
});

testOrSkip(T, FILE, missing, "Cloud Shell (MSI_ENDPOINT): the signed-in user's token", async () => {
  const { claims } = await identityLogin({ MSI_ENDPOINT: `${sb.endpoints.managedIdentity}/oauth2/token` });
  assert.is(claims.oid, isv.userObjectId);
});

testOrSkip(T, FILE, missing, "App Service 2017-09-01 (MSI_ENDPOINT + MSI_SECRET): the ISV's managed identity", async () => {
  const { claims } = await identityLogin({
    MSI_ENDPOINT: `${sb.endpoints.managedIdentity}/msi/token`, MSI_SECRET: sb.env.IDENTITY_HEADER, APPSETTING_WEBSITE_SITE_NAME: "metering-timer",
  });
  assert.is(claims.oid, mi.principalId);
});

T.after(async () => {
  await sb.stop();
});
T.run();
