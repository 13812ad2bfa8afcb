// lib/azure/deployment.mts: a failed deployment as one line (the failing resource, the innermost
// error, a fix), from the shapes az prints; and deployTemplate with a fake az.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeDeploymentFailure, innermostError, parseDeploymentErrorLine } from "../../lib/azure/deployment.mts";
import { grantCommandFor, parseGrantScope } from "../../lib/azure/role-grants.mts";

const where = { subscriptionId: "s1", resourceGroup: "mrg-1", deploymentName: "metering-connect-customer-grants" };
// As ARM nests a provider's answer in a deployment's details: a JSON document in a string.
const NESTED = {
  status: "Failed",
  error: {
    code: "DeploymentFailed", target: "/subscriptions/s1/resourceGroups/mrg-1/providers/Microsoft.Resources/deployments/x",
    message: "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
    details: [{ code: "BadRequest", message: JSON.stringify({ error: { code: "RoleAssignmentUpdateNotPermitted", message: "Tenant ID, application ID, principal ID, and scope are not allowed to be updated." } }, null, 2) }],
  },
};

const T = suite("describeDeploymentFailure()");
T("opens a detail whose message is an error document; names the resource and the fix in one line", () => {
  const error = parseDeploymentErrorLine(JSON.stringify(NESTED))!;
  assert.is(error.code, "DeploymentFailed");
  assert.is(innermostError(error).code, "RoleAssignmentUpdateNotPermitted");
  const line = describeDeploymentFailure({
    ...where, error, fallback: "x",
    operation: { resourceType: "Microsoft.Authorization/roleAssignments", resourceName: "0b7d9a7c-0000-4000-8000-000000000001" },
  });
  assert.not.match(line, /\n|\{/);
  assert.is(line, "Cannot deploy metering-connect-customer-grants into s1/mrg-1: Microsoft.Authorization/roleAssignments '0b7d9a7c-0000-4000-8000-000000000001' failed with RoleAssignmentUpdateNotPermitted: Tenant ID, application ID, principal ID, and scope are not allowed to be updated.; an assignment of that name exists for another principal (an identity deleted and created again): find it with 3-managed-app.mts s1 mrg-1 role-assignments, remove it with --delete <name>, then run again");
});
T("the operation's own error wins; an unknown code points at the operations list", () => {
  const line = describeDeploymentFailure({ ...where, error: NESTED.error, fallback: "x", operation: { resourceType: "Microsoft.KeyVault/vaults", resourceName: "kv", error: { code: "VaultAlreadyExists", message: "The vault name 'kv' is already in use. Vault names are global." } } });
  assert.match(line, /Microsoft\.KeyVault\/vaults 'kv' failed with VaultAlreadyExists: The vault name 'kv' is already in use\.; see az deployment operation group list --subscription s1 -g mrg-1 -n metering-connect-customer-grants$/);
});
T("PrincipalNotFound names delegatedManagedIdentityResourceId; a line that is not JSON is left undefined", () => {
  const line = describeDeploymentFailure({ ...where, error: { code: "PrincipalNotFound", message: "Principal abc does not exist in the directory t. Check that you have the correct principal ID." }, fallback: "x" });
  assert.match(line, /a resource failed with PrincipalNotFound: Principal abc does not exist in the directory t\.; .*delegatedManagedIdentityResourceId/);
  assert.is(parseDeploymentErrorLine("(DeploymentFailed) At least one resource deployment operation failed."), undefined);
});
T.run();

const G = suite("parseGrantScope() / grantCommandFor()");
G("rg, vault:<name>, namespace:<name>; anything else is a usage error", () => {
  assert.equal(parseGrantScope(undefined), { kind: "resourceGroup" });
  assert.equal(parseGrantScope("vault:fabrikam-kv"), { kind: "vault", name: "fabrikam-kv" });
  assert.equal(parseGrantScope("namespace:bus1"), { kind: "namespace", name: "bus1" });
  for (const bad of ["bucket:x", "vault:", "vault:a/b"]) {
    try {
      parseGrantScope(bad);
      assert.unreachable(bad);
    } catch (e) {
      assert.is((e as { code?: string }).code, "ERR_USAGE");
    }
  }
});
G("names the command for the identity that made the call", () => {
  const o = { subscriptionId: "s1", managedResourceGroup: "mrg-1", role: "Key Vault Secrets User", scope: { kind: "vault" as const, name: "kv" } };
  assert.is(grantCommandFor({ ...o, via: "uami" }), '1-connect-customer.mts s1 mrg-1 --grant "Key Vault Secrets User"');
  assert.is(grantCommandFor({ ...o, via: "list-tokens" }), '3-managed-app.mts s1 mrg-1 grant-app-identity --role "Key Vault Secrets User" --scope vault:kv');
});
G.run();
