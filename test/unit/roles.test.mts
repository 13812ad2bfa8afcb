import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BUILT_IN_ROLES, parseRole, roleName } from "../../lib/azure/roles.mts";
import { UsageError } from "../../lib/core/errors.mts";

const T = suite("parseRole() / roleName()");
T("names match case-insensitively, with or without 'Azure ' for Service Bus", () => {
  assert.equal(parseRole("Key Vault Secrets Officer"), { name: "Key Vault Secrets Officer", id: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7" });
  assert.is(parseRole("service bus data sender").id, "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39");
  assert.is(parseRole("Azure Service Bus Data Receiver").id, "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0");
  assert.is(parseRole("  storage  blob data reader ").name, "Storage Blob Data Reader");
});
T("a GUID is taken as a role definition id, named when known", () => {
  assert.equal(parseRole("4633458B-17DE-408A-B874-0445C86B69E6"), { name: "Key Vault Secrets User", id: "4633458b-17de-408a-b874-0445c86b69e6" });
  assert.equal(parseRole("11111111-2222-3333-4444-555555555555"), { name: "11111111-2222-3333-4444-555555555555", id: "11111111-2222-3333-4444-555555555555" });
});
T("an unknown name is a usage error listing the known roles; Owner is named but not grantable by name", () => {
  try {
    parseRole("Owner");
    assert.unreachable();
  } catch (e) {
    assert.instance(e, UsageError);
    assert.match((e as Error).message, /Key Vault Secrets Officer/);
  }
  assert.is(roleName("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"), "Owner");
  assert.is(roleName(BUILT_IN_ROLES["Azure Service Bus Data Owner"]), "Azure Service Bus Data Owner");
  assert.is(roleName("00000000-0000-0000-0000-000000000000"), undefined);
});
T.run();
