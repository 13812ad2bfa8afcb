// 3-managed-app against the sandbox: show, refresh-permissions, list-tokens (system-assigned and
// the connected UAMI, both response casings handled by lib), role assignments in the customer's
// tenant with --delete. Checked against the sandbox's ARM state and request counters.
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { connectCustomer, JWT_RE, readAudit, roleAssignmentsOf } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[1];
const cc = await connectCustomer(env, customer, ["Key Vault Secrets User"]);
const app = () => sb.state.managedApps().find((a) => a.id.toLowerCase() === customer.managedAppId.toLowerCase())!;
const run = (...args: string[]) => runScript("3-managed-app.mts", [customer.subscriptionId, customer.managedResourceGroup, ...args], { env });
const armCount = async (key: string) => (await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests")).arm?.[key] ?? 0;

const T = suite("3-managed-app");

T("show --json: plan, billing details, provisioning state, identity and authorizations as ARM has them", async () => {
  const r = await run("show", "--json");
  assert.is(r.code, 0, describe(r));
  const j = JSON.parse(r.stdout);
  assert.is(j.id.toLowerCase(), customer.managedAppId.toLowerCase());
  assert.is(j.plan.name, customer.planId);
  assert.is(j.billingDetails.resourceUsageId, customer.resourceUsageId);
  assert.is(j.provisioningState, "Succeeded");
  assert.is(j.identity.principalId, (app().identity as { principalId: string }).principalId);
  assert.equal(j.authorizations, [{ principalId: sb.world.isv.userObjectId, roleDefinitionId: ROLE.Owner, roleName: "Owner" }]);
  const text = await run("show");
  assert.match(text.stdout, new RegExp(`resourceUsageId\\s+${customer.resourceUsageId}`));
});

T("refresh-permissions posts refreshPermissions once and reports the state", async () => {
  const before = await armCount("POST /subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Solutions/applications/:applicationName/refreshPermissions");
  const r = await run("refresh-permissions");
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /refreshPermissions accepted .* provisioningState Succeeded/);
  assert.is(await armCount("POST /subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Solutions/applications/:applicationName/refreshPermissions"), before + 1);
});

T("list-tokens: the system-assigned identity's token for the default audience, claims only", async () => {
  const r = await run("list-tokens");
  assert.is(r.code, 0, describe(r));
  assert.not.match(r.stdout, JWT_RE);
  assert.match(r.stdout, /^aud\s+https:\/\/management\.azure\.com\/$/m);
  assert.match(r.stdout, new RegExp(`^oid\\s+${(app().identity as { principalId: string }).principalId}$`, "m"));
  assert.match(r.stdout, new RegExp(`^xms_mirid\\s+${customer.managedAppId}$`, "mi"));
  assert.match(r.stdout, /^expires\s/m);
});

T("list-tokens --identity <UAMI> --audience … --raw: only the token, which is the UAMI's", async () => {
  const r = await run("list-tokens", "--identity", cc.uamiId, "--audience", "https://vault.azure.net", "--raw");
  assert.is(r.code, 0, describe(r));
  const lines = r.stdout.trim().split("\n");
  assert.is(lines.length, 1);
  const claims = jose.decodeJwt(lines[0]);
  assert.is(claims.appid, cc.uamiClientId);
  assert.is(claims.aud, "https://vault.azure.net");
  const issued = await admin<Array<{ grant: string; appid?: string }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.grant === "listTokens" && t.appid === cc.uamiClientId));
});

T("role-assignments lists the grant of the connect template, marked as the UAMI's", async () => {
  const j = JSON.parse((await run("role-assignments", "--json")).stdout);
  const grant = j.find((x: { principalId: string; roleName: string }) => x.principalId === cc.uamiPrincipalId && x.roleName === "Key Vault Secrets User");
  assert.ok(grant, JSON.stringify(j));
  // The table: a header, the assignment's full name (what --delete takes), * on the UAMI's row, 80 columns.
  const r = await run("role-assignments");
  assert.is(r.code, 0, describe(r));
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(lines[0], /^NAME\s+ROLE\s+PRINCIPAL\s+SCOPE$/);
  const row = lines.find((l) => l.startsWith(grant.name))!;
  assert.ok(row, r.stdout);
  assert.match(row, /Key Vault/);
  assert.match(row, /\* /);
  assert.match(r.stdout, /^\* the metering UAMI$/m);
  for (const l of lines) assert.ok(l.length <= 80, l);
});

T("role-assignments --delete removes it in the customer's tenant", async () => {
  const [ra] = roleAssignmentsOf(sb, cc.uamiPrincipalId);
  const name = ra.id.split("/").pop()!;
  const r = await run("role-assignments", "--delete", name);
  assert.is(r.code, 0, describe(r));
  assert.is(roleAssignmentsOf(sb, cc.uamiPrincipalId).length, 0);
  // ARM answers 204 for an assignment that is not there: the script says it found nothing.
  const again = await run("role-assignments", "--delete", name);
  assert.is(again.code, 1, describe(again));
  assert.match(again.stderr, new RegExp(`found no role assignment ${name}`));
});

T("every call is audited, tokens replaced by their claims", async () => {
  const { text, records } = await readAudit(env);
  assert.not.match(text, JWT_RE);
  const listed = records.find((r) => r.operation === "managedApp.listTokens")!;
  assert.is(listed.response.body.value[0].access_token, undefined);
  assert.match(listed.response.body.value[0].access_tokenRedacted, /^<redacted: \d+ chars>$/);
  assert.ok(listed.response.body.value[0].access_tokenClaims.oid);
  assert.ok(records.some((r) => r.operation === "roleAssignments.delete"));
  assert.ok(records.some((r) => r.operation === "managedApp.refreshPermissions"));
});

T("bad input: exit 2, one clear line", async () => {
  const other = sb.world.customers[2];
  const cases: Array<[string[], RegExp]> = [
    [["show", "extra"], /expected <subscription>/],
    [["explode"], /expected one of show, refresh-permissions, list-tokens, role-assignments/],
    [["show", "--raw"], /--raw belongs to list-tokens/],
    [["list-tokens", "--identity", "not-an-id"], /user-assigned identity resource id/],
    [["role-assignments", "--delete", "x"], /role assignment name/],
    [["list-tokens", "--raw", "--json"], /exclude each other/],
  ];
  for (const [a, re] of cases) {
    const r = await run(...a);
    assert.is(r.code, 2, `${a.join(" ")}: ${describe(r)}`);
    assert.match(r.stderr, re);
  }
  // Outside the MRGs the plan authorizes, ARM answers 403 even for a group that does not exist.
  const foreign = await runScript("3-managed-app.mts", [other.subscriptionId, "no-such-mrg", "show"], { env });
  assert.is(foreign.code, 1, describe(foreign));
  assert.match(foreign.stderr, /AuthorizationFailed.*plan's authorizations/);
});

T.after(() => sb.stop());
T.run();
