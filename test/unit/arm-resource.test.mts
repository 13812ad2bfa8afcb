import { suite } from "uvu";
import * as assert from "uvu/assert";
import { armRequest, parseAzArmError, storageBlobEndpoint } from "../../lib/azure/arm-resource.mts";
import { ArmError, AzError, ResourceNotFoundError } from "../../lib/core/errors.mts";

const T = suite("parseAzArmError() / armRequest()");
T("reads both of az's error line shapes", () => {
  assert.equal(parseAzArmError("(ResourceNotFound) The Resource 'x' was not found."), { code: "ResourceNotFound", message: "The Resource 'x' was not found." });
  assert.equal(parseAzArmError("Not Found({\"error\":{\"code\":\"ParentResourceNotFound\",\"message\":\"Parent gone.\"}})"), { code: "ParentResourceNotFound", message: "Parent gone." });
  assert.equal(parseAzArmError("something else"), { message: "something else" });
});
const failing = (errorLine: string) => (async () => {
  throw new AzError("az failed", { args: ["rest"], exitCode: 1, stderr: `ERROR: ${errorLine}`, errorLine });
}) as never;
T("not found → ResourceNotFoundError naming the thing; forbidden → ArmError with a hint", async () => {
  try {
    await armRequest({ method: "GET", url: "/x", what: "Key Vault 'kv'", hint: "check the name", azRest: failing("Not Found({\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"The Resource 'Microsoft.KeyVault/vaults/kv' was not found.\"}})") });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ResourceNotFoundError);
    assert.is((e as Error).message, "Cannot find Key Vault 'kv': The Resource 'Microsoft.KeyVault/vaults/kv' was not found. (check the name)");
  }
  try {
    await armRequest({ method: "DELETE", url: "/x", what: "role assignment r", azRest: failing("Forbidden({\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"No.\"}})") });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ArmError);
    assert.match((e as Error).message, /^Cannot change role assignment r: AuthorizationFailed: No\. \(check the subscription/);
  }
});
T("storageBlobEndpoint(): the account's primaryEndpoints.blob; an account not there yet is undefined; other failures throw", async () => {
  const where = { subscriptionId: "sub", resourceGroup: "rg", name: "idpabc" };
  let url = "";
  const answering = (async (o: { url: string }) => {
    url = o.url;
    return { properties: { primaryEndpoints: { blob: "https://idpabc.blob.core.windows.net/" } } };
  }) as never;
  assert.is(await storageBlobEndpoint({ ...where, azRest: answering }), "https://idpabc.blob.core.windows.net/");
  assert.is(url, "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/idpabc?api-version=2025-06-01");
  assert.is(await storageBlobEndpoint({ ...where, azRest: failing("Not Found({\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"gone\"}})") }), undefined);
  try {
    await storageBlobEndpoint({ ...where, azRest: failing("Forbidden({\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"No.\"}})") });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ArmError);
    assert.match((e as Error).message, /^Cannot read storage account 'idpabc' in sub\/rg: AuthorizationFailed/);
  }
});
T.run();
