// Microsoft's JS management SDKs that the product does not use, at Azure's own host
// (https://management.azure.com, their default) through the sandbox's front: @azure/arm-resources
// (resource groups, resources) with @azure/arm-resourcesdeployments (a template deployment polled
// through Azure-AsyncOperation: arm-resources 7 moved deployments into that package),
// @azure/arm-managedapplications (managed apps, listTokens), @azure/arm-authorization (role
// assignments) and @azure/arm-resourcegraph (a query). Each client is configured only as a user
// would configure it: a credential and the proxy. The sandbox's state and counters are the proof.
import { randomUUID } from "node:crypto";
import { ApplicationClient } from "@azure/arm-managedapplications";
import { AuthorizationManagementClient } from "@azure/arm-authorization";
import { ResourceGraphClient } from "@azure/arm-resourcegraph";
import { ResourceManagementClient } from "@azure/arm-resources";
import { DeploymentsClient } from "@azure/arm-resourcesdeployments";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { isvCredential } from "../helpers/realclients.mts";

const sb = await startTestSandbox();
const isv = sb.world.isv;
const customer = sb.world.customers[0];
const credential = isvCredential(sb);
const front = new URL(sb.front!.url);
// What a user sets for a proxy (or HTTPS_PROXY does); the clients keep their default endpoint.
const options = { proxyOptions: { host: `${front.protocol}//${front.hostname}`, port: Number(front.port) } };
const RG = "js-sdk-rg";
const rgId = `/subscriptions/${isv.subscriptionId}/resourceGroups/${RG}`;

/** Every item of a paged list. */
async function all<T>(pages: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of pages) out.push(item);
  return out;
}

/** The sandbox's ARM request counters whose route matches `re`, summed. */
async function armCount(re: RegExp): Promise<number> {
  const counters = await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
  return Object.entries(counters.arm ?? {}).filter(([route]) => re.test(route)).reduce((n, [, v]) => n + v, 0);
}

const T = suite("JS management SDKs through the front");

T("@azure/arm-resources: resource groups created, listed and read at management.azure.com", async () => {
  const client = new ResourceManagementClient(credential, isv.subscriptionId, options);
  const tunnels = sb.front!.stats.tunnels;
  const created = await client.resourceGroups.createOrUpdate(RG, { location: "westeurope", tags: { purpose: "sdk" } });
  assert.is(created.name, RG);
  assert.is(created.properties?.provisioningState, "Succeeded");
  const groups = await all(client.resourceGroups.list());
  assert.ok(groups.some((g) => g.id === rgId && g.location === "westeurope"), JSON.stringify(groups.map((g) => g.id)));
  const got = await client.resourceGroups.get(RG);
  assert.equal(got.tags, { purpose: "sdk" });
  assert.ok(await client.resourceGroups.checkExistence(RG).then((r) => r.body));
  assert.ok(sb.front!.stats.tunnels > tunnels, "the SDK went through the front");
  assert.ok(sb.state.getResource(rgId), "the resource group exists in ARM");
});

T("@azure/arm-resourcesdeployments: an ARM JSON deployment polled through Azure-AsyncOperation creates its resources; outputs as {type, value}", async () => {
  const client = new DeploymentsClient(credential, isv.subscriptionId, options);
  const resourcesClient = new ResourceManagementClient(credential, isv.subscriptionId, options);
  const template = {
    $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    contentVersion: "1.0.0.0",
    parameters: { uamiName: { type: "string" } },
    resources: [{ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name: "[parameters('uamiName')]", location: "westeurope" }],
    outputs: {
      clientId: { type: "string", value: "[reference(parameters('uamiName')).clientId]" },
      name: { type: "string", value: "[parameters('uamiName')]" },
    },
  };
  const polls = await armCount(/deployments\/:deploymentName\/operationStatuses/i);
  const d = await client.deployments.createOrUpdate(RG, "js-sdk-deploy", {
    properties: { mode: "Incremental", template, parameters: { uamiName: { value: "js-sdk-uami" } } },
  }, { updateIntervalInMs: 50 });
  assert.is(d.properties?.provisioningState, "Succeeded", JSON.stringify(d));
  const uami = sb.state.getResource(`${rgId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/js-sdk-uami`);
  assert.ok(uami, "the template's identity exists in ARM");
  const outputs = d.properties?.outputs as Record<string, { type: string; value: unknown }>;
  assert.equal(outputs.name, { type: "String", value: "js-sdk-uami" });
  assert.equal(outputs.clientId, { type: "String", value: uami.properties.clientId });
  assert.ok(await armCount(/deployments\/:deploymentName\/operationStatuses/i) > polls, "the SDK polled the Azure-AsyncOperation URL");
  const resources = await all(resourcesClient.resources.listByResourceGroup(RG));
  assert.ok(resources.some((r) => r.id === uami.id && r.type === "Microsoft.ManagedIdentity/userAssignedIdentities"), JSON.stringify(resources));
  const ops = await all(client.deploymentOperations.list(RG, "js-sdk-deploy"));
  assert.ok(ops.some((o) => o.properties?.targetResource?.id === uami.id && o.properties?.provisioningState === "Succeeded"), JSON.stringify(ops));
});

T("@azure/arm-resourcesdeployments: an invalid template is a RestError with ARM's InvalidTemplate code, and nothing is created", async () => {
  const client = new DeploymentsClient(credential, isv.subscriptionId, options);
  const template = { $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion: "1.0.0.0", resources: [{ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name: "[nosuchfunction()]", location: "westeurope" }] };
  try {
    await client.deployments.createOrUpdate(RG, "js-sdk-invalid", { properties: { mode: "Incremental", template } }, { updateIntervalInMs: 50 });
    assert.unreachable("the deployment should have been refused");
  } catch (err) {
    assert.not.instance(err, assert.Assertion);
    assert.is((err as { code?: string }).code, "InvalidTemplate", String(err));
    assert.is((err as { statusCode?: number }).statusCode, 400);
  }
});

T("@azure/arm-managedapplications: the customer's app in a list, and listTokens with accessToken defined", async () => {
  const client = new ApplicationClient(credential, customer.subscriptionId, options);
  const apps = await all(client.applications.listBySubscription());
  const app = apps.find((a) => a.id === customer.managedAppId);
  assert.ok(app, JSON.stringify(apps.map((a) => a.id)));
  assert.is(app.managedResourceGroupId, `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`);
  assert.is(app.billingDetails?.resourceUsageId, customer.resourceUsageId);
  assert.is(app.plan?.name, customer.planId);
  const inRg = await all(client.applications.listByResourceGroup(customer.resourceGroup));
  assert.equal(inRg.map((a) => a.id), [customer.managedAppId]);
  const appName = customer.managedAppId.split("/").pop()!;
  const tokens = await client.applications.listTokens(customer.resourceGroup, appName, { authorizationAudience: "https://management.azure.com/" });
  assert.is(tokens.value?.length, 1, JSON.stringify(tokens));
  const t = tokens.value![0];
  assert.type(t.accessToken, "string");
  assert.is(t.resourceId, customer.managedAppId);
  assert.is(t.authorizationAudience, "https://management.azure.com/");
  assert.is(t.tokenType, "Bearer");
  const claims = jose.decodeJwt(t.accessToken!);
  assert.is(claims.oid, (sb.state.managedApp(customer.managedAppId)!.identity as { principalId: string }).principalId);
  assert.is(claims.tid, customer.tenantId);
});

T("@azure/arm-authorization: a role assignment created at a resource group, then listed for that scope", async () => {
  const client = new AuthorizationManagementClient(credential, isv.subscriptionId, options);
  const principalId = randomUUID();
  const name = randomUUID();
  const created = await client.roleAssignments.create(rgId, name, {
    roleDefinitionId: `/subscriptions/${isv.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Reader}`,
    principalId,
    principalType: "ServicePrincipal",
  });
  assert.is(created.name, name);
  assert.is(created.principalId, principalId);
  assert.is(created.scope, rgId);
  assert.is(created.principalType, "ServicePrincipal");
  const stored = sb.state.getResource(`${rgId}/providers/Microsoft.Authorization/roleAssignments/${name}`);
  assert.is(String(stored?.properties.principalId), principalId);
  const listed = await all(client.roleAssignments.listForScope(rgId, { filter: "atScope()" }));
  assert.ok(listed.some((r) => r.name === name && r.roleDefinitionId?.toLowerCase().endsWith(ROLE.Reader)), JSON.stringify(listed));
  const mine = await all(client.roleAssignments.listForSubscription({ filter: `principalId eq '${principalId}'` }));
  assert.equal(mine.map((r) => r.name), [name]);
  const got = await client.roleAssignments.getById(created.id!);
  assert.is(got.id, created.id);
});

T("@azure/arm-resourcegraph: a query finds the customer's managed application and its billing id", async () => {
  const client = new ResourceGraphClient(credential, options);
  const res = await client.resources({
    query: "resources | where type =~ 'microsoft.solutions/applications' | project id, subscriptionId, resourceUsageId = properties.billingDetails.resourceUsageId",
    subscriptions: [customer.subscriptionId],
  });
  const rows = res.data as Array<{ id: string; subscriptionId: string; resourceUsageId: string }>;
  assert.equal(rows, [{ id: customer.managedAppId, subscriptionId: customer.subscriptionId, resourceUsageId: customer.resourceUsageId }]);
  assert.is(res.count, 1);
  assert.is(res.totalRecords, 1);
  assert.is(res.resultTruncated, "false");
});

T.after(async () => {
  await sb.stop();
});
T.run();
