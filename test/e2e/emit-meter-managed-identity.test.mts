// 2-emit-meter from a timer job: no az on PATH, nobody signed in. The ISV credential falls back to
// the managed identity of the ISV's compute (the sandbox's App Service-style endpoint from
// IDENTITY_ENDPOINT / IDENTITY_HEADER, or IMDS through AZURE_POD_IDENTITY_AUTHORITY_HOST), which
// signs the assertion in the ISV's Key Vault once it holds Key Vault Crypto User there.
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { grantRole } from "../helpers/arm.mts";
import { hourBack, hoursAgoOf } from "../helpers/hours.mts";
import { findOnPath, pathWithOnly } from "../helpers/path.mts";
import { connectCustomer, readAudit } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
await connectCustomer(env, customer);
const mi = sb.world.isv.managedIdentity!;

// A PATH with nothing but the runtime, so no az on it whatever this machine has installed.
const jobPath = await pathWithOnly([]);
const noAz = { ...env, PATH: jobPath.PATH };
// Each test bills its own hour, counted from when this file started (the clock's hour may turn).
const args = async (hour: number, quantity: string) => [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(hourBack(hour)), customer.dimensions[0], quantity];
const vaultId = () => sb.state.ofType("Microsoft.KeyVault/vaults").find((v) => v.subscriptionId === sb.world.isv.subscriptionId)!.id;
const events = () => admin<Array<Record<string, unknown>>>(sb, "GET", "/metering/events");
const vaultTokensOfMi = async (grant: string) =>
  (await admin<Array<{ oid: string; aud: string; grant: string }>>(sb, "GET", "/tokens")).filter((t) => t.oid === mi.principalId && t.aud === "https://vault.azure.net" && t.grant === grant);

const T = suite("2-emit-meter with the managed identity");

T("precondition: no az on the PATH the job gets, and one on the signed-in user's", () => {
  assert.is(findOnPath("az", noAz.PATH), undefined);
  assert.is(findOnPath("az", env.PATH), join(sb.dir, "bin", "az"), "the sandbox's az stand-in comes first");
});

T("without a role on the ISV's vault the managed identity cannot sign: exit 1 naming the role, nothing billed", async () => {
  const r = await runScript("2-emit-meter.mts", await args(1, "4"), { env: noAz });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Key Vault Crypto User/);
  assert.is((await events()).length, 0);
  assert.ok((await vaultTokensOfMi("app-service")).length >= 1, "the fallback asked the managed identity endpoint");
});

T("with Key Vault Crypto User on the vault, the event is accepted with no az and no sign-in", async () => {
  await grantRole(sb, vaultId(), mi.principalId, ROLE.KeyVaultCryptoUser);
  const r = await runScript("2-emit-meter.mts", await args(1, "4"), { env: noAz });
  assert.is(r.code, 0, describe(r));
  const evs = await events();
  assert.is(evs.length, 1);
  assert.is(evs[0].quantity, 4);
  assert.is(evs[0].resourceId, customer.resourceUsageId);
  const last = (await readAudit(env)).records.at(-1)!;
  assert.is(last.response.status, 200);
});

T("AZURE_TOKEN_CREDENTIALS unset: DefaultAzureCredential's own chain finds the managed identity", async () => {
  const r = await runScript("2-emit-meter.mts", await args(2, "6"), { env: { ...noAz, AZURE_TOKEN_CREDENTIALS: undefined } });
  assert.is(r.code, 0, describe(r));
  assert.is((await events()).length, 2);
});

T("IMDS instead of App Service: AZURE_POD_IDENTITY_AUTHORITY_HOST points the managed identity at the sandbox", async () => {
  const before = (await vaultTokensOfMi("imds")).length;
  const r = await runScript("2-emit-meter.mts", await args(3, "8"), {
    env: { ...noAz, IDENTITY_ENDPOINT: undefined, IDENTITY_HEADER: undefined, AZURE_POD_IDENTITY_AUTHORITY_HOST: sb.endpoints.managedIdentity },
  });
  assert.is(r.code, 0, describe(r));
  assert.is((await events()).length, 3);
  assert.ok((await vaultTokensOfMi("imds")).length > before, "the token came from IMDS");
});

T("with az on PATH the signed-in user still comes first", async () => {
  const r = await runScript("2-emit-meter.mts", await args(4, "2"), { env });
  assert.is(r.code, 0, describe(r));
  const issued = await admin<Array<{ oid: string; aud: string; grant: string }>>(sb, "GET", "/tokens");
  const lastVault = issued.filter((t) => t.aud.startsWith("https://vault.azure.net")).at(-1)!;
  assert.is(lastVault.oid, sb.world.isv.userObjectId);
  assert.is(lastVault.grant, "az");
});

T.after(async () => {
  await sb.stop();
  await jobPath.remove();
});
T.run();
