// 3-keyvault-secret against the sandbox: secrets in an RBAC Key Vault inside the customer's MRG,
// as the federated UAMI (after 1-connect-customer --grant) or as the managed app's system-assigned
// identity (--via list-tokens). Checked against the vault's stored secrets.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { createVault, grantRole } from "../helpers/arm.mts";
import { connectCustomer, customerConfig, JWT_RE, readAudit, roleAssignmentsOf, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
await connectCustomer(env, customer);
// The vault the managed application deployed into its MRG.
const vault = await createVault(sb, mrg, "fabrikam-app-kv", customer.tenantId);
const SECRET = "correct horse battery staple";

const run = (args: string[], stdin?: string) => runScript("3-keyvault-secret.mts", [customer.subscriptionId, customer.managedResourceGroup, ...args], { env, stdin });
const stored = () => admin<Array<{ vault: string; name: string; value: string; versions: string[] }>>(sb, "GET", "/keyvault/secrets?vault=fabrikam-app-kv");

const T = suite("3-keyvault-secret");

T("without a role: exit 1 and the message names the role and how to grant it; nothing stored", async () => {
  const r = await run(["fabrikam-app-kv", "set", "db-password"], SECRET);
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /'Key Vault Secrets Officer' role/);
  assert.match(r.stderr, /1-connect-customer --grant "Key Vault Secrets Officer"/);
  assert.is((await stored()).length, 0);
});

T("--grant \"Key Vault Secrets Officer\" assigns the role to the UAMI on the MRG", async () => {
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup, "--grant", "Key Vault Secrets Officer"], env);
  const cc = await customerConfig(env, customer);
  assert.equal(roleAssignmentsOf(sb, cc.uamiPrincipalId).map((r) => r.roleId), [ROLE.KeyVaultSecretsOfficer]);
  assert.equal(cc.grantedRoleDefinitionIds, [ROLE.KeyVaultSecretsOfficer]);
});

T("set from stdin stores the value in the MRG's vault (trailing newline dropped); get prints it", async () => {
  const r = await run(["fabrikam-app-kv", "set", "db-password"], `${SECRET}\n`);
  assert.is(r.code, 0, describe(r));
  assert.not.match(r.stdout + r.stderr, new RegExp(SECRET));
  const s = await stored();
  assert.equal(s.map((x) => [x.name, x.value]), [["db-password", SECRET]]);
  const g = await run(["fabrikam-app-kv", "get", "db-password"]);
  assert.is(g.code, 0, describe(g));
  assert.is(g.stdout, `${SECRET}\n`);
});

T("set --file keeps the file's content exactly and adds a version; list shows names, never values", async () => {
  const file = join(env.METERING_DATA_DIR, "value.txt");
  await writeFile(file, "line1\nline2\n");
  const r = await run(["fabrikam-app-kv", "set", "db-password", "--file", file, "--content-type", "text/plain"]);
  assert.is(r.code, 0, describe(r));
  const s = (await stored())[0];
  assert.is(s.value, "line1\nline2\n");
  assert.is(s.versions.length, 2);
  const l = await run(["fabrikam-app-kv", "list", "--json"]);
  assert.is(l.code, 0, describe(l));
  const listed = JSON.parse(l.stdout);
  assert.equal(listed.map((x: { name: string }) => x.name), ["db-password"]);
  assert.not.match(l.stdout, /line1/);
});

T("--via list-tokens acts as the managed app's system-assigned identity (needs its own role)", async () => {
  const app = sb.state.managedApps().find((a) => a.id.toLowerCase() === customer.managedAppId.toLowerCase())!;
  const principal = String((app.identity as { principalId: string }).principalId);
  const denied = await run(["fabrikam-app-kv", "get", "db-password", "--via", "list-tokens"]);
  assert.is(denied.code, 1, describe(denied));
  assert.match(denied.stderr, /system-assigned identity/);
  assert.match(denied.stderr, /Key Vault Secrets User/);
  await grantRole(sb, vault.id, principal, ROLE.KeyVaultSecretsUser);
  const ok = await run(["fabrikam-app-kv", "get", "db-password", "--via", "list-tokens", "--json"]);
  assert.is(ok.code, 0, describe(ok));
  assert.is(JSON.parse(ok.stdout).value, "line1\nline2\n");
  const issued = await admin<Array<{ grant: string; oid: string; aud: string }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.grant === "listTokens" && t.oid === principal && t.aud === "https://vault.azure.net"));
});

T("the audit log records each exchange with the value's length, never the value or a token", async () => {
  const { text, records } = await readAudit(env);
  assert.not.match(text, new RegExp(SECRET));
  assert.not.match(text, /line1/);
  assert.not.match(text, JWT_RE);
  const set = records.find((r) => r.operation === "keyvault.setSecret" && r.response?.status === 200)!;
  assert.is(set.request.body.value, `<redacted: ${SECRET.length} chars>`);
  assert.ok(set.tokenClaims.appid);
  assert.ok(records.some((r) => r.operation === "keyvault.getSecret" && r.via === "list-tokens"));
});

T("bad input: a value on argv, unknown vault or secret, missing arguments: exit 2, nothing stored", async () => {
  const before = JSON.stringify(await stored());
  const cases: Array<[string[], string | undefined, RegExp]> = [
    [["fabrikam-app-kv", "set", "db-password", "hunter2"], undefined, /Cannot take a secret value from the command line/],
    [["no-such-vault", "get", "db-password"], undefined, /Key Vault 'no-such-vault'/],
    [["fabrikam-app-kv", "get", "never-set"], undefined, /no such secret/],
    [["fabrikam-app-kv", "get"], undefined, /Cannot use secret name ""/],
    [["fabrikam-app-kv"], undefined, /expected <subscription>/],
    [["fabrikam-app-kv", "set", "db-password"], "", /empty secret/],
    [["fabrikam-app-kv", "set", "bad_name!"], "x", /Cannot use secret name/],
    [["fabrikam-app-kv", "delete", "db-password"], undefined, /expected set, get or list/],
    [["fabrikam-app-kv", "get", "db-password", "--via", "magic"], undefined, /--via/],
  ];
  for (const [a, stdin, re] of cases) {
    const r = await run(a, stdin);
    assert.is(r.code, 2, `${a.join(" ")}: ${describe(r)}`);
    assert.match(r.stderr, re);
    assert.not.match(r.stderr, /hunter2/);
  }
  assert.is(JSON.stringify(await stored()), before);
});

T.after(() => sb.stop());
T.run();
