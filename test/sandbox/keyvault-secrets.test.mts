// Key Vault secrets with RBAC per vault (docs/azure-behaviour.md §4): vaults in a customer's managed
// resource group, reached with Microsoft's SecretClient as identities of the customer's tenant.
// A role on one vault does not reach another; a role on the resource group reaches both; Secrets
// User reads but cannot write; another tenant's token is refused with the challenge.
import { randomUUID } from "node:crypto";
import { SecretClient } from "@azure/keyvault-secrets";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { createVault, grantRole, tokenFor, type Principal } from "../helpers/arm.mts";

const sb = await startTestSandbox({ azurite: false });
const customer = sb.world.customers[0];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
const VAULT_AUDIENCE = "https://vault.azure.net";

const a = await createVault(sb, mrg, "fabrikam-app-a", customer.tenantId);
const b = await createVault(sb, mrg, "fabrikam-app-b", customer.tenantId);
const officerA: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
const readerB: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
const rgOfficer: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
await grantRole(sb, a.id, officerA.objectId, ROLE.KeyVaultSecretsOfficer);
await grantRole(sb, b.id, readerB.objectId, ROLE.KeyVaultSecretsUser);
await grantRole(sb, mrg, rgOfficer.objectId, ROLE.KeyVaultSecretsOfficer);

function client(vaultUri: string, who: Principal) {
  const credential = { getToken: async () => ({ token: await tokenFor(sb, who, VAULT_AUDIENCE), expiresOnTimestamp: Date.now() + 3600_000 }) };
  return new SecretClient(vaultUri, credential, { disableChallengeResourceVerification: true });
}
async function status(p: Promise<unknown>): Promise<number | string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return (e as { statusCode?: number }).statusCode ?? String(e);
  }
}

const T = suite("Key Vault secrets: RBAC per vault");

T("Secrets Officer on vault A sets and gets there, and is refused on vault B with the action named", async () => {
  await client(a.uri, officerA).setSecret("db-password", "s3cret-A");
  assert.is((await client(a.uri, officerA).getSecret("db-password")).value, "s3cret-A");
  let err: { statusCode?: number; code?: string; message?: string } = {};
  try {
    await client(b.uri, officerA).setSecret("db-password", "x");
  } catch (e) {
    err = e as typeof err;
  }
  assert.is(err.statusCode, 403);
  assert.match(String(err.message), /secrets\/setSecret\/action/);
  const stored = await admin<Array<{ vault: string; name: string; value: string }>>(sb, "GET", "/keyvault/secrets?vault=fabrikam-app-a");
  assert.equal(stored.map((s) => [s.vault, s.name, s.value]), [["fabrikam-app-a", "db-password", "s3cret-A"]]);
  assert.is((await admin<unknown[]>(sb, "GET", "/keyvault/secrets?vault=fabrikam-app-b")).length, 0);
});

T("Secrets User on vault B reads and lists, but cannot set", async () => {
  await client(b.uri, rgOfficer).setSecret("api-key", "k-B");
  assert.is((await client(b.uri, readerB).getSecret("api-key")).value, "k-B");
  const names: string[] = [];
  for await (const p of client(b.uri, readerB).listPropertiesOfSecrets()) names.push(p.name);
  assert.equal(names, ["api-key"]);
  assert.is(await status(client(b.uri, readerB).setSecret("api-key", "new")), 403);
  assert.is(await status(client(a.uri, readerB).getSecret("db-password")), 403);
});

T("Secrets Officer on the resource group reaches every vault in it", async () => {
  assert.is(await status(client(a.uri, rgOfficer).setSecret("from-rg", "1")), "ok");
  assert.is(await status(client(b.uri, rgOfficer).getSecret("api-key")), "ok");
});

T("a token of another tenant is 401 with the vault's tenant in the challenge", async () => {
  const token = await tokenFor(sb, { ...officerA, tenantId: sb.world.isv.tenantId }, VAULT_AUDIENCE);
  const res = await fetch(`${a.uri}secrets/db-password?api-version=7.4`, { headers: { authorization: `Bearer ${token}` } });
  assert.is(res.status, 401);
  assert.match(String(res.headers.get("www-authenticate")), new RegExp(customer.tenantId));
});

T.after(() => sb.stop());
T.run();
