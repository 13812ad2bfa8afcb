import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  getBillableManagedApp, getManagedAppForResourceGroup, listManagedApps, MANAGED_APPS_QUERY, parseResourceGroupId, queryResourceGraph,
} from "../../lib/azure/managed-apps.mts";
import { ArmError, AzError, ManagedAppNotBillableError, NotManagedResourceGroupError } from "../../lib/core/errors.mts";
import type { AzRest } from "../../lib/azure/az.mts";

const SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const APP_ID = `/subscriptions/${SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app1`;
const APP = {
  id: APP_ID, kind: "MarketPlace", plan: { name: "silver", publisher: "p", product: "o", version: "1.0.0" },
  properties: { managedResourceGroupId: `/subscriptions/${SUB}/resourceGroups/mrg-app1`, provisioningState: "Succeeded", billingDetails: { resourceUsageId: "55555555-5555-4555-8555-555555555555" } },
};

type Call = { method: string; url: string; body?: unknown };
function fakeRest(routes: (call: Call) => unknown, calls: Call[] = []): AzRest {
  return (async (options: Call) => {
    const call = { method: options.method, url: options.url, ...(options.body !== undefined ? { body: options.body } : {}) };
    calls.push(call);
    return routes(call);
  }) as AzRest;
}

const app = suite("getManagedAppForResourceGroup()");
app("follows the MRG's managedBy to the application", async () => {
  const calls: Call[] = [];
  const azRest = fakeRest((c) => (c.url.includes("/providers/Microsoft.Solutions/") ? APP : { managedBy: APP_ID }), calls);
  const result = await getManagedAppForResourceGroup({ subscriptionId: SUB, managedResourceGroup: "mrg-app1", azRest });
  assert.equal(result, {
    id: APP_ID, planName: "silver", resourceUsageId: "55555555-5555-4555-8555-555555555555", provisioningState: "Succeeded",
    kind: "MarketPlace", managedResourceGroupId: `/subscriptions/${SUB}/resourceGroups/mrg-app1`,
  });
  assert.equal(calls, [
    { method: "GET", url: `/subscriptions/${SUB}/resourceGroups/mrg-app1?api-version=2021-04-01` },
    { method: "GET", url: `${APP_ID}?api-version=2019-07-01` },
  ]);
});
app("a group nobody manages is NotManagedResourceGroupError", async () => {
  try {
    await getManagedAppForResourceGroup({ subscriptionId: SUB, managedResourceGroup: "plain", azRest: fakeRest(() => ({ name: "plain" })) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, NotManagedResourceGroupError);
    assert.is((error as NotManagedResourceGroupError).code, "ERR_NOT_MANAGED_RESOURCE_GROUP");
    assert.match((error as Error).message, /not managed by one \(managedBy is null\)$/);
  }
});
app("a group managed by something else is not accepted", async () => {
  const azRest = fakeRest(() => ({ managedBy: `/subscriptions/${SUB}/resourceGroups/x/providers/Microsoft.ContainerService/managedClusters/aks` }));
  try {
    await getManagedAppForResourceGroup({ subscriptionId: SUB, managedResourceGroup: "MC_x", azRest });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, NotManagedResourceGroupError);
  }
});
app("an unreadable application explains the needed access", async () => {
  const azRest = fakeRest((c) => {
    if (c.url.includes("Microsoft.Solutions")) {
      throw new AzError("Cannot run az rest: (AuthorizationFailed) no", { args: [], exitCode: 1, stderr: "", errorLine: "(AuthorizationFailed) no" });
    }
    return { managedBy: APP_ID };
  });
  try {
    await getManagedAppForResourceGroup({ subscriptionId: SUB, managedResourceGroup: "mrg-app1", azRest });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ArmError);
    assert.match((error as Error).message, /^Cannot read managed application .*: \(AuthorizationFailed\) no \(the ISV user needs access/);
  }
});
app.run();

const billable = suite("getBillableManagedApp()");
billable("refuses an app without billing details, naming its state", async () => {
  const pending = { ...APP, properties: { ...APP.properties, provisioningState: "Accepted", billingDetails: null } };
  const azRest = fakeRest((c) => (c.url.includes("Microsoft.Solutions") ? pending : { managedBy: APP_ID }));
  try {
    await getBillableManagedApp({ subscriptionId: SUB, managedResourceGroup: "mrg-app1", azRest });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ManagedAppNotBillableError);
    assert.match((error as Error).message, /has no properties\.billingDetails\.resourceUsageId \(provisioningState Accepted;/);
  }
});
billable("returns a billable app", async () => {
  const azRest = fakeRest((c) => (c.url.includes("Microsoft.Solutions") ? APP : { managedBy: APP_ID }));
  assert.is((await getBillableManagedApp({ subscriptionId: SUB, managedResourceGroup: "mrg-app1", azRest })).planName, "silver");
});
billable.run();

const graph = suite("queryResourceGraph()");
graph("follows $skipToken with the same query", async () => {
  const calls: Call[] = [];
  const pages: Record<string, unknown> = {
    none: { data: [{ n: 1 }], $skipToken: "t1", totalRecords: 3, count: 1, resultTruncated: "false" },
    t1: { data: [{ n: 2 }], $skipToken: "t2" },
    t2: { data: [{ n: 3 }] },
  };
  const azRest = fakeRest((c) => pages[(c.body as any).options.$skipToken ?? "none"], calls);
  const rows = await queryResourceGraph({ query: "resources", azRest });
  assert.equal(rows, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.is(calls.length, 3);
  for (const c of calls) {
    assert.is(c.method, "POST");
    assert.is(c.url, "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01");
    assert.is((c.body as any).query, "resources");
    assert.is((c.body as any).options.resultFormat, "objectArray");
    assert.is((c.body as any).options.$top, 1000);
  }
  assert.is((calls[0].body as any).options.$skipToken, undefined);
  assert.is((calls[2].body as any).options.$skipToken, "t2");
});
graph("stops on a $skipToken that repeats", async () => {
  try {
    await queryResourceGraph({ query: "q", azRest: fakeRest(() => ({ data: [], $skipToken: "same" })) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ArmError);
    assert.match((error as Error).message, /same \$skipToken came back twice/);
  }
});
graph("rejects an answer without data", async () => {
  try {
    await queryResourceGraph({ query: "q", azRest: fakeRest(() => ({ error: "x" })) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ArmError);
  }
});
graph.run();

const list = suite("listManagedApps()");
list("maps rows to subscription, MRG, plan and state, sorted", async () => {
  const rows = [
    { id: "/subscriptions/b/resourceGroups/r/providers/Microsoft.Solutions/applications/z", subscriptionId: "b", managedResourceGroupId: "/subscriptions/b/resourceGroups/mrg-z", plan: { name: "gold" }, provisioningState: "Succeeded", resourceUsageId: "u" },
    { id: APP_ID, subscriptionId: SUB, managedResourceGroupId: `/subscriptions/${SUB}/resourceGroups/mrg-app1`, plan: null, provisioningState: "Accepted", resourceUsageId: "" },
  ];
  const calls: Call[] = [];
  const apps = await listManagedApps({ azRest: fakeRest(() => ({ data: rows }), calls) });
  assert.is((calls[0].body as any).query, MANAGED_APPS_QUERY);
  assert.equal(apps, [
    { managedAppId: APP_ID, subscriptionId: SUB, managedResourceGroup: "mrg-app1", planName: undefined, provisioningState: "Accepted", resourceUsageId: undefined },
    { managedAppId: rows[0].id, subscriptionId: "b", managedResourceGroup: "mrg-z", planName: "gold", provisioningState: "Succeeded", resourceUsageId: "u" },
  ]);
});
list("the query filters managed applications case-insensitively and projects plan and state", () => {
  assert.match(MANAGED_APPS_QUERY, /where type =~ "microsoft\.solutions\/applications"/);
  assert.match(MANAGED_APPS_QUERY, /project id, subscriptionId, managedResourceGroupId, plan, provisioningState/);
});
list.run();

const ids = suite("parseResourceGroupId()");
ids("splits a resource group id, ignoring case of the segments", () => {
  assert.equal(parseResourceGroupId("/subscriptions/s/resourcegroups/rg/providers/x"), { subscriptionId: "s", resourceGroup: "rg" });
  assert.is(parseResourceGroupId("/providers/x"), undefined);
  assert.is(parseResourceGroupId(null), undefined);
});
ids.run();
