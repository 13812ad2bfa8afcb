// Grants across a customer's lifecycle, as processes against the sandbox, checked in the
// sandbox's ARM state: 1-connect-customer --grant makes assignments with
// delegatedManagedIdentityResourceId (the sandbox refuses a publisher's cross-tenant assignment
// for an MRG identity without it), 1-disconnect-customer removes them, a reconnect with the same
// grants works, and a refused deployment is one line naming the failing resource and the fix.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { guid } from "../../sandbox/services/arm/template/functions.mts";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { arm, armPut } from "../helpers/arm.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { customerConfig, readAudit, roleAssignmentsOf, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox({ azurite: true });
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const who = [customer.subscriptionId, customer.managedResourceGroup];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
const raw = /\{\s*"(error|code|status)"/;

const T = suite("grants across disconnect and reconnect");

T.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
});

T("connect --grant: the assignment names the UAMI's resource as delegatedManagedIdentityResourceId; audit records both changes", async () => {
  const r = await runScript("1-connect-customer.mts", [...who, "--grant", "Key Vault Secrets User"], { env });
  assert.is(r.code, 0, describe(r));
  const cc = await customerConfig(env, customer);
  const ras = sb.state.roleAssignmentsOf(cc.uamiPrincipalId);
  assert.is(ras.length, 1);
  assert.is(String(ras[0].properties.scope).toLowerCase(), mrg.toLowerCase());
  assert.is(String(ras[0].properties.delegatedManagedIdentityResourceId).toLowerCase(), cc.uamiId.toLowerCase());
  // The name includes the principal: a recreated identity never meets it.
  assert.is(ras[0].name, guid(mrg, cc.uamiPrincipalId, ROLE.KeyVaultSecretsUser));
  const { records } = await readAudit(env);
  const connect = records.find((x) => x.operation === "customer.connect")!;
  assert.is(connect.outcome, "succeeded");
  assert.ok(connect.targets.includes(cc.uamiId));
  const grant = records.find((x) => x.operation === "customer.grant")!;
  assert.is(grant.outcome, "succeeded");
  assert.equal(grant.targets.map((t: string) => t.toLowerCase()), [ras[0].id.toLowerCase()]);
});

T("disconnect removes the identity's role assignments; connect with the same grant works again", async () => {
  const before = await customerConfig(env, customer);
  const dry = await runScript("1-disconnect-customer.mts", [...who, "--dry-run"], { env });
  assert.is(dry.code, 0, describe(dry));
  assert.match(dry.stdout.replace(/\n {2,}/g, " "), /would delete role assignment\s+Key Vault Secrets User/);
  const d = await runScript("1-disconnect-customer.mts", who, { env });
  assert.is(d.code, 0, describe(d));
  assert.equal(roleAssignmentsOf(sb, before.uamiPrincipalId), [], "no assignment of the deleted principal is left");
  const { records } = await readAudit(env);
  const revoke = records.find((x) => x.operation === "customer.revokeGrants")!;
  assert.is(revoke.outcome, "succeeded");
  assert.is(revoke.targets.length, 1);
  assert.ok(records.some((x) => x.operation === "customer.deleteIdentity" && x.targets.some((t: string) => t.toLowerCase() === before.uamiId.toLowerCase())));

  const again = await runScript("1-connect-customer.mts", [...who, "--grant", "Key Vault Secrets User"], { env });
  assert.is(again.code, 0, describe(again));
  const after = await customerConfig(env, customer);
  assert.is(after.uamiId.toLowerCase(), before.uamiId.toLowerCase(), "same resource id");
  assert.is.not(after.uamiPrincipalId, before.uamiPrincipalId, "a new principal");
  assert.equal(roleAssignmentsOf(sb, after.uamiPrincipalId).map((x) => x.roleId), [ROLE.KeyVaultSecretsUser]);
});

T("a refused grant is one line: the failing role assignment, ARM's code and the fix; recorded as failed", async () => {
  const cc = await customerConfig(env, customer);
  // An assignment under the name the template will use, held by another principal (as one left
  // behind by an older tool would be): ARM refuses to change its principal.
  const name = guid(mrg, cc.uamiPrincipalId, ROLE.KeyVaultSecretsOfficer);
  await armPut(sb, `${mrg}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`, {
    properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultSecretsOfficer}`, principalId: crypto.randomUUID(), principalType: "ServicePrincipal" },
  });
  const r = await runScript("1-connect-customer.mts", [...who, "--grant", "Key Vault Secrets Officer"], { env });
  assert.is(r.code, 1, describe(r));
  const lines = r.stderr.trim().split("\n").filter((l) => !/^(Reading|Deploying|Granting)/.test(l));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`Microsoft\\.Authorization/roleAssignments '${name}' failed with RoleAssignmentUpdateNotPermitted`));
  assert.match(lines[0], /role-assignments, remove it with --delete <name>/);
  assert.not.match(r.stderr, raw, "no raw JSON");
  const { records } = await readAudit(env);
  const failed = records.filter((x) => x.operation === "customer.grant").at(-1)!;
  assert.is(failed.outcome, "failed");
  assert.match(failed.error.message, /RoleAssignmentUpdateNotPermitted/);
  // The advice works: delete the stale assignment, run again.
  await runOk("3-managed-app.mts", [...who, "role-assignments", "--delete", name], env);
  await runOk("1-connect-customer.mts", [...who, "--grant", "Key Vault Secrets Officer"], env);
  assert.equal(roleAssignmentsOf(sb, cc.uamiPrincipalId).map((x) => x.roleId).sort(), [ROLE.KeyVaultSecretsOfficer, ROLE.KeyVaultSecretsUser].sort());
});

T("the sandbox refuses a publisher's assignment for an MRG identity without delegatedManagedIdentityResourceId", async () => {
  const cc = await customerConfig(env, customer);
  const path = (n: string) => `${mrg}/providers/Microsoft.Authorization/roleAssignments/${n}?api-version=2022-04-01`;
  const body = (extra: object) => ({ properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Reader}`, principalId: cc.uamiPrincipalId, principalType: "ServicePrincipal", ...extra } });
  const name = crypto.randomUUID();
  const without = await arm(sb, "PUT", path(name), body({}));
  assert.is(without.status, 400, without.text);
  assert.is(without.json.error.code, "PrincipalNotFound");
  assert.match(without.json.error.message, new RegExp(`does not exist in the directory ${sb.world.isv.tenantId}`));
  assert.is(sb.state.getResource(`${mrg}/providers/Microsoft.Authorization/roleAssignments/${name}`), undefined);
  const wrong = await arm(sb, "PUT", path(name), body({ delegatedManagedIdentityResourceId: `${mrg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other` }));
  assert.is(wrong.status, 400, wrong.text);
  const right = await arm(sb, "PUT", path(name), body({ delegatedManagedIdentityResourceId: cc.uamiId }));
  assert.is(right.status, 201, right.text);
  const r = await runScript("3-managed-app.mts", [...who, "role-assignments", "--delete", name], { env });
  assert.is(r.code, 0, describe(r));
});

T("role-assignments --delete of an id that does not exist says so and exits 1", async () => {
  const missing = crypto.randomUUID();
  const r = await runScript("3-managed-app.mts", [...who, "role-assignments", "--delete", missing], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, new RegExp(`found no role assignment ${missing}`));
  assert.not.match(r.stdout, /Deleted/);
});

T("the world's Service Bus namespace in the MRG: a grant on the namespace's queues, then a message through it", async () => {
  const [ns] = customer.serviceBusNamespaces;
  assert.equal(ns, { name: "fabrikam-bus", queues: ["commands", "status"] });
  const denied = await runScript("3-servicebus.mts", [...who, ns.name, "send", "commands"], { env, stdin: "{\"op\":\"ping\"}" });
  assert.is(denied.code, 1, describe(denied));
  const advice = /grant it to that identity with 1-connect-customer\.mts (\S+) (\S+) --grant "([^"]+)"/.exec(denied.stderr);
  assert.ok(advice, denied.stderr);
  await runOk("1-connect-customer.mts", [advice![1], advice![2], "--grant", advice![3]], env);
  const sent = await runScript("3-servicebus.mts", [...who, ns.name, "send", "commands"], { env, stdin: "{\"op\":\"ping\"}" });
  assert.is(sent.code, 0, describe(sent));
  const q = (await admin<Array<{ messages: unknown[] }>>(sb, "GET", `/servicebus/queues?namespace=${ns.name}&queue=commands`))[0];
  assert.is(q.messages.length, 1);
});

T.after(() => sb.stop());
T.run();
