// 3-keyvault-secret against the sandbox: secrets in the RBAC Key Vault the world seeds in the
// customer's MRG, as the federated UAMI (after 1-connect-customer --grant) or as the managed app's
// system-assigned identity (--via list-tokens, after 3-managed-app grant-app-identity). Checked
// against the vault's stored secrets and the sandbox's role assignments.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { grantRole } from "../helpers/arm.mts";
import { connectCustomer, customerConfig, JWT_RE, readAudit, roleAssignmentsOf, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
await connectCustomer(env, customer);
// The vault the managed application deployed into its MRG (sandbox/world.json).
const VAULT = customer.keyVaults[0];
const vault = { id: `${mrg}/providers/Microsoft.KeyVault/vaults/${VAULT}` };
const SECRET = "correct horse battery staple";

const run = (args: string[], stdin?: string) => runScript("3-keyvault-secret.mts", [customer.subscriptionId, customer.managedResourceGroup, ...args], { env, stdin });
const stored = () => admin<Array<{ vault: string; name: string; value: string; versions: string[] }>>(sb, "GET", `/keyvault/secrets?vault=${VAULT}`);

const T = suite("3-keyvault-secret");

T("without a role: exit 1 and the message names the role and how to grant it; nothing stored", async () => {
  const r = await run([VAULT, "set", "db-password"], SECRET);
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /'Key Vault Secrets Officer' role/);
  // The command that grants the role to the identity that lacked it: the UAMI.
  assert.match(r.stderr, new RegExp(`grant it to that identity with 1-connect-customer\\.mts ${customer.subscriptionId} ${customer.managedResourceGroup} --grant "Key Vault Secrets Officer"`));
  assert.is((await stored()).length, 0);
});

T("--grant \"Key Vault Secrets Officer\" assigns the role to the UAMI on the MRG", async () => {
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup, "--grant", "Key Vault Secrets Officer"], env);
  const cc = await customerConfig(env, customer);
  assert.equal(roleAssignmentsOf(sb, cc.uamiPrincipalId).map((r) => r.roleId), [ROLE.KeyVaultSecretsOfficer]);
  assert.equal(cc.grantedRoleDefinitionIds, [ROLE.KeyVaultSecretsOfficer]);
});

T("set from stdin stores the value in the MRG's vault (trailing newline dropped); get prints it", async () => {
  const r = await run([VAULT, "set", "db-password"], `${SECRET}\n`);
  assert.is(r.code, 0, describe(r));
  assert.not.match(r.stdout + r.stderr, new RegExp(SECRET));
  const s = await stored();
  assert.equal(s.map((x) => [x.name, x.value]), [["db-password", SECRET]]);
  const g = await run([VAULT, "get", "db-password"]);
  assert.is(g.code, 0, describe(g));
  assert.is(g.stdout, `${SECRET}\n`);
});

T("set --file keeps the file's content exactly and adds a version; list shows names, never values", async () => {
  const file = join(env.METERING_DATA_DIR, "value.txt");
  await writeFile(file, "line1\nline2\n");
  const r = await run([VAULT, "set", "db-password", "--file", file, "--content-type", "text/plain"]);
  assert.is(r.code, 0, describe(r));
  const s = (await stored())[0];
  assert.is(s.value, "line1\nline2\n");
  assert.is(s.versions.length, 2);
  const l = await run([VAULT, "list", "--json"]);
  assert.is(l.code, 0, describe(l));
  const listed = JSON.parse(l.stdout);
  assert.equal(listed.map((x: { name: string }) => x.name), ["db-password"]);
  assert.not.match(l.stdout, /line1/);
});

T("--via list-tokens: Forbidden names the app's identity and grant-app-identity; following it works", async () => {
  const app = sb.state.managedApps().find((a) => a.id.toLowerCase() === customer.managedAppId.toLowerCase())!;
  const principal = String((app.identity as { principalId: string }).principalId);
  const denied = await run([VAULT, "get", "db-password", "--via", "list-tokens"]);
  assert.is(denied.code, 1, describe(denied));
  assert.match(denied.stderr, new RegExp(`system-assigned identity \\(principal ${principal}\\) needs the 'Key Vault Secrets User' role`));
  const advice = /grant it to that identity with 3-managed-app\.mts (\S+) (\S+) grant-app-identity --role "([^"]+)" --scope (\S+)/.exec(denied.stderr);
  assert.ok(advice, denied.stderr);
  assert.equal(advice!.slice(1), [customer.subscriptionId, customer.managedResourceGroup, "Key Vault Secrets User", `vault:${VAULT}`]);
  // A raw cross-tenant assignment for the app's identity (no delegatedManagedIdentityResourceId) is refused.
  try {
    await grantRole(sb, vault.id, principal, ROLE.KeyVaultSecretsUser);
    assert.unreachable("the sandbox took a cross-tenant assignment without delegatedManagedIdentityResourceId");
  } catch (e) {
    assert.match(String((e as Error).message), /HTTP 400 .*PrincipalNotFound/);
  }
  const g = await runScript("3-managed-app.mts", [advice![1], advice![2], "grant-app-identity", "--role", advice![3], "--scope", advice![4]], { env });
  assert.is(g.code, 0, describe(g));
  const ras = sb.state.roleAssignmentsOf(principal);
  assert.is(ras.length, 1);
  assert.is(String(ras[0].properties.scope).toLowerCase(), vault.id.toLowerCase());
  assert.is(String(ras[0].properties.roleDefinitionId).split("/").pop(), ROLE.KeyVaultSecretsUser);
  assert.is(String(ras[0].properties.delegatedManagedIdentityResourceId).toLowerCase(), customer.managedAppId.toLowerCase());
  const ok = await run([VAULT, "get", "db-password", "--via", "list-tokens", "--json"]);
  assert.is(ok.code, 0, describe(ok));
  assert.is(JSON.parse(ok.stdout).value, "line1\nline2\n");
  const issued = await admin<Array<{ grant: string; oid: string; aud: string }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.grant === "listTokens" && t.oid === principal && t.aud === "https://vault.azure.net"));
  const { records } = await readAudit(env);
  const change = records.find((r) => r.operation === "managedApp.grantIdentity")!;
  assert.is(change.outcome, "succeeded");
  assert.equal(change.targets.map((t: string) => t.toLowerCase()), [ras[0].id.toLowerCase()]);
  // Granting again changes nothing and says so.
  const again = await runScript("3-managed-app.mts", [advice![1], advice![2], "grant-app-identity", "--role", advice![3], "--scope", advice![4]], { env });
  assert.is(again.code, 0, describe(again));
  assert.match(again.stdout, /Already held by the managed application.s identity on .*: Key Vault Secrets User/);
  assert.is(sb.state.roleAssignmentsOf(principal).length, 1);
});

T("grant-app-identity: bad role or scope is exit 2; an unknown vault is exit 2 and grants nothing", async () => {
  const before = sb.state.ofType("Microsoft.Authorization/roleAssignments").length;
  for (const [args, re] of [
    [["--role", "Chief Wizard"], /Cannot grant role "Chief Wizard"/],
    [["--role", "Key Vault Secrets User", "--scope", "bucket:x"], /Cannot use --scope "bucket:x"/],
    [[], /name at least one --role/],
    [["--role", "Key Vault Secrets User", "--scope", "vault:no-such-kv"], /Key Vault 'no-such-kv'/],
  ] as Array<[string[], RegExp]>) {
    const r = await runScript("3-managed-app.mts", [customer.subscriptionId, customer.managedResourceGroup, "grant-app-identity", ...args], { env });
    assert.is(r.code, 2, `${args.join(" ")}: ${describe(r)}`);
    assert.match(r.stderr, re);
  }
  assert.is(sb.state.ofType("Microsoft.Authorization/roleAssignments").length, before);
});

T("delete removes the secret from the vault (UAMI with Secrets Officer); a second delete is exit 2", async () => {
  await runOk("3-keyvault-secret.mts", [customer.subscriptionId, customer.managedResourceGroup, VAULT, "set", "to-delete"], env, "x");
  const r = await run([VAULT, "delete", "to-delete"]);
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /Deleted to-delete from/);
  assert.not.ok((await stored()).some((x) => x.name === "to-delete"));
  const again = await run([VAULT, "delete", "to-delete"]);
  assert.is(again.code, 2, describe(again));
  assert.match(again.stderr, /no such secret/);
  const { records } = await readAudit(env);
  assert.ok(records.some((x) => x.operation === "keyvault.deleteSecret" && x.response?.status === 200));
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
    [[VAULT, "set", "db-password", "hunter2"], undefined, /Cannot take a secret value from the command line/],
    [["no-such-vault", "get", "db-password"], undefined, /Key Vault 'no-such-vault'/],
    [[VAULT, "get", "never-set"], undefined, /no such secret/],
    [[VAULT, "get"], undefined, /Cannot use secret name ""/],
    [[VAULT], undefined, /expected <subscription>/],
    [[VAULT, "set", "db-password"], "", /empty secret/],
    [[VAULT, "set", "bad_name!"], "x", /Cannot use secret name/],
    [[VAULT, "remove", "db-password"], undefined, /expected set, get, list or delete/],
    [[VAULT, "get", "db-password", "--via", "magic"], undefined, /--via/],
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
