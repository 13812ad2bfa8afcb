import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeManagedApp, listManagedAppTokens, listRoleAssignments, parseListTokensResponse } from "../../lib/azure/managed-app.mts";
import { ArmError, AzError, ResourceNotFoundError } from "../../lib/core/errors.mts";

const parse = suite("parseListTokensResponse()");
parse("snake_case (docs, emulator): strings, epoch seconds", () => {
  const [t] = parseListTokensResponse({ value: [{ access_token: "tok", expires_in: "3599", expires_on: "1767229200", not_before: "1767225600", authorizationAudience: "https://vault.azure.net", resourceId: "/x", token_type: "Bearer" }] });
  assert.equal(t, { token: "tok", expiresOnTimestamp: 1767229200_000, resourceId: "/x", audience: "https://vault.azure.net", tokenType: "Bearer" });
});
parse("camelCase (swagger): numbers, ISO dates, or only expiresIn", () => {
  const before = Date.now();
  const [a, b] = parseListTokensResponse({ value: [
    { accessToken: "a", expiresOn: "2026-01-01T00:00:00Z", tokenType: "Bearer" },
    { accessToken: "b", expiresIn: 60 },
  ] });
  assert.is(a.token, "a");
  assert.is(a.expiresOnTimestamp, Date.parse("2026-01-01T00:00:00Z"));
  assert.ok(b.expiresOnTimestamp >= before + 60_000 && b.expiresOnTimestamp <= Date.now() + 60_000, "expiresIn counted from the parse");
});
parse("no value array or no token is an ArmError", () => {
  for (const body of [{}, null, { value: [{ expires_on: "1" }] }]) {
    try {
      parseListTokensResponse(body);
      assert.unreachable();
    } catch (e) {
      assert.instance(e, ArmError);
    }
  }
});
parse.run();

const describe = suite("describeManagedApp()");
describe("takes the fields of docs/azure-behaviour.md §5.1 and names known authorization roles", () => {
  const d = describeManagedApp({
    id: "/a", kind: "MarketPlace", plan: { name: "silver" }, identity: { type: "SystemAssigned", principalId: "p" },
    properties: { provisioningState: "Succeeded", billingDetails: { resourceUsageId: "r" }, managedResourceGroupId: "/m",
      authorizations: [{ principalId: "u", roleDefinitionId: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" }, { principalId: "v", roleDefinitionId: "x" }] },
  });
  assert.is(d.plan!.name, "silver");
  assert.is(d.billingDetails!.resourceUsageId, "r");
  assert.equal(d.authorizations, [{ principalId: "u", roleDefinitionId: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", roleName: "Owner" }, { principalId: "v", roleDefinitionId: "x" }]);
  assert.is(describeManagedApp({ id: "/b", properties: {} }).billingDetails, null);
});
describe.run();

const calls = suite("listManagedAppTokens() / listRoleAssignments() through az rest");
calls("listTokens posts the audience and identities to the app's action", async () => {
  const seen: unknown[] = [];
  const azRest = async (o: unknown) => {
    seen.push(o);
    return { value: [{ access_token: "t", expires_on: "2000000000" }] };
  };
  const r = await listManagedAppTokens({ appId: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Solutions/applications/a", userAssignedIdentities: ["/u"], azRest: azRest as never });
  assert.equal(seen[0], {
    method: "POST", url: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Solutions/applications/a/listTokens?api-version=2019-07-01",
    body: { authorizationAudience: "https://management.azure.com/", userAssignedIdentities: ["/u"] }, command: undefined, env: undefined,
  });
  assert.is(r.tokens[0].token, "t");
});
calls("role assignments are read with &tenantId= and atScope(); not found becomes ResourceNotFoundError", async () => {
  let url = "";
  const rows = await listRoleAssignments({
    subscriptionId: "s", managedResourceGroup: "g", tenantId: "t",
    azRest: (async (o: { url: string }) => {
      url = o.url;
      return { value: [{ id: "/ra/1", name: "1", properties: { principalId: "p", roleDefinitionId: "/x/4633458b-17de-408a-b874-0445c86b69e6", scope: "/s" } }] };
    }) as never,
  });
  assert.match(url, /roleAssignments\?api-version=2022-04-01&tenantId=t&\$filter=atScope\(\)$/);
  assert.is(rows[0].roleName, "Key Vault Secrets User");
  try {
    await listRoleAssignments({
      subscriptionId: "s", managedResourceGroup: "g", tenantId: "t",
      azRest: (async () => {
        throw new AzError("x", { args: [], exitCode: 1, stderr: "", errorLine: "Not Found({\"error\":{\"code\":\"ResourceGroupNotFound\",\"message\":\"Resource group 'g' could not be found.\"}})" });
      }) as never,
    });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ResourceNotFoundError);
    assert.match((e as Error).message, /Resource group 'g' could not be found/);
  }
});
calls.run();
