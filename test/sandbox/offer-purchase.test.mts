// The admin API's Marketplace purchase (POST /offers/purchase): the managed application, its
// managed resource group and the offer's mainTemplate (templates/offer/, Bicep modules compiled
// to nested deployments) deployed INTO the MRG by ARM's deployment engine, as Azure does at
// purchase time. Checked against the sandbox's ARM state.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE, type ArmResource } from "../../sandbox/core/state.mts";
import { compileBicep, parseBicep } from "../../sandbox/az/bicep/evaluate.mts";
import { BicepSyntaxError } from "../../sandbox/az/bicep/errors.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox({ azurite: false });
const OFFER_DIR = fileURLToPath(new URL("../../templates/offer/", import.meta.url));
const CUSTOMER_TENANT = "6c1e0d3a-5b7f-4a2e-9c81-3f4d2e1a0b9c";
const CUSTOMER_SUB = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";
const ISSUER = "https://contosoisvissuer.blob.core.windows.net/oidc";
const SUBJECT = `metering-submission-via-uami from ${sb.world.isv.tenantId}`;

interface Purchase {
  application: { id: string; managedResourceGroupId: string; managedResourceGroup: string; provisioningState: string; billingDetails: { resourceUsageId: string } | null; identity: { type: string; principalId?: string }; authorizations: unknown[] };
  deployment: { id: string; provisioningState: string; outputs?: Record<string, { value: string }>; error?: { code: string; message: string } };
}

const purchase = (body: Record<string, unknown>) =>
  fetch(sb.endpoints.admin + "/offers/purchase", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const under = (scope: string, type: string): ArmResource[] => sb.state.ofTypeUnder(type, scope);

const P = suite("POST /offers/purchase");

P("the sample offer: an app with plan, system identity and authorizations; its template's resources in the MRG", async () => {
  const res = await purchase({
    tenantId: CUSTOMER_TENANT, tenantName: "northwind", subscriptionId: CUSTOMER_SUB, resourceGroup: "northwind-apps", managedResourceGroup: "mrg-northwind",
    plan: { product: "metered-analytics", name: "gold" },
    templatePath: `${OFFER_DIR}mainTemplate.bicep`, createUiDefinitionPath: `${OFFER_DIR}createUiDefinition.json`,
    parameters: { meteringIssuer: ISSUER, meteringSubject: SUBJECT, vaultName: "northwind-kv", namespaceName: "northwind-bus" },
  });
  assert.is(res.status, 201);
  const p = await res.json() as Purchase;
  assert.is(p.deployment.provisioningState, "Succeeded", JSON.stringify(p.deployment.error));
  assert.is(p.application.provisioningState, "Succeeded");
  assert.match(p.application.billingDetails!.resourceUsageId, /^[0-9a-f-]{36}$/);
  assert.is(p.application.identity.type, "SystemAssigned");
  const app = sb.state.managedApp(p.application.id)!;
  assert.equal(app.plan, { name: "gold", publisher: "contoso-isv", product: "metered-analytics", version: "1.0.0", promotionCode: "" });
  assert.equal(app.properties.authorizations, [{ principalId: sb.world.isv.userObjectId, roleDefinitionId: ROLE.Owner }]);
  const mrg = sb.state.getResource(p.application.managedResourceGroupId)!;
  assert.is(mrg.managedBy, app.id);

  // Module 1: the UAMI and its FIC trusting the issuer, with Key Vault Secrets User on the MRG, no delegated id.
  const [uami] = under(mrg.id, "Microsoft.ManagedIdentity/userAssignedIdentities").filter((r) => r.name === "metering-submission-uami");
  assert.ok(uami);
  const [fic] = sb.state.federatedCredentialsOf(uami.id);
  assert.equal([fic.properties.issuer, fic.properties.subject, fic.properties.audiences], [ISSUER, SUBJECT, ["api://AzureADTokenExchange"]]);
  const ras = sb.state.ofType("Microsoft.Authorization/roleAssignments");
  const uamiPrincipal = (uami.properties as { principalId: string }).principalId;
  const uamiRa = ras.filter((r) => r.properties.principalId === uamiPrincipal);
  assert.is(uamiRa.length, 1);
  assert.is(uamiRa[0].properties.scope, mrg.id);
  assert.match(String(uamiRa[0].properties.roleDefinitionId), /4633458b-17de-408a-b874-0445c86b69e6$/);
  assert.is(uamiRa[0].properties.delegatedManagedIdentityResourceId, undefined);

  // Module 2: the vault with the app's own identity as Key Vault Secrets User on it (filled by the purchase).
  const vault = sb.state.getResource(`${mrg.id}/providers/Microsoft.KeyVault/vaults/northwind-kv`)!;
  assert.ok(vault);
  const appRa = ras.filter((r) => r.properties.principalId === p.application.identity.principalId);
  assert.equal(appRa.map((r) => r.properties.scope), [vault.id]);

  // Module 3: the namespace, its command and status queues, the worker identity as Data Receiver and Sender.
  const ns = `${mrg.id}/providers/Microsoft.ServiceBus/namespaces/northwind-bus`;
  assert.equal(under(ns, "Microsoft.ServiceBus/namespaces/queues").map((q) => q.name).sort(), ["commands", "status"]);
  const worker = sb.state.getResource(`${mrg.id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/servicebus-worker`)!;
  const workerRoles = ras.filter((r) => r.properties.principalId === (worker.properties as { principalId: string }).principalId).map((r) => String(r.properties.roleDefinitionId).split("/").pop()).sort();
  assert.equal(workerRoles, ["4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"].sort());

  // The modules are nested deployments in the MRG beside the purchase's own, with outputs.
  const deployments = under(mrg.id, "Microsoft.Resources/deployments").map((d) => d.name).sort();
  assert.equal(deployments, ["app-identity-vault", "metered-analytics", "metering-identity", "servicebus-worker"]);
  assert.is(p.deployment.outputs!.uamiClientId.value, (uami.properties as { clientId: string }).clientId);
});

P("without the createUiDefinition's identity the app has none, and the vault has no app grant", async () => {
  const res = await purchase({
    tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, resourceGroup: "northwind-apps", applicationName: "second", managedResourceGroup: "mrg-northwind-2",
    plan: { product: "metered-analytics", name: "silver" }, templatePath: `${OFFER_DIR}mainTemplate.bicep`,
    parameters: { meteringIssuer: ISSUER, meteringSubject: SUBJECT, vaultName: "northwind-kv2", namespaceName: "northwind-bus2" },
  });
  const p = await res.json() as Purchase;
  assert.is(p.deployment.provisioningState, "Succeeded", JSON.stringify(p.deployment.error));
  assert.is(p.application.identity.type, "None");
  const vault = `${p.application.managedResourceGroupId}/providers/Microsoft.KeyVault/vaults/northwind-kv2`;
  assert.is(sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.properties.scope === vault).length, 0);
});

P("a template that fails leaves the app Failed without billingDetails, with the deployment's error", async () => {
  const template = compileBicep(parseBicep(`resource v 'Microsoft.KeyVault/vaults@2023-07-01' = {\n  name: 'x'\n  location: 'westeurope'\n  properties: {}\n}\n`, "bad.bicep"));
  const res = await purchase({ tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, applicationName: "broken", managedResourceGroup: "mrg-broken", plan: { product: "metered-analytics", name: "silver" }, template });
  const p = await res.json() as Purchase;
  assert.is(res.status, 201);
  assert.is(p.deployment.provisioningState, "Failed");
  assert.ok(p.deployment.error?.code);
  assert.is(p.application.provisioningState, "Failed");
  assert.is(p.application.billingDetails, null);
});

P("bad requests are 400 naming the field; a second purchase into the same MRG is 409; nothing is created", async () => {
  const before = sb.state.managedApps().length;
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ tenantId: "x", subscriptionId: CUSTOMER_SUB, plan: { product: "metered-analytics", name: "gold" }, template: {} }, /GUIDs/],
    [{ tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, plan: { product: "nope", name: "gold" }, template: {} }, /no offer 'nope'/],
    [{ tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, plan: { product: "metered-analytics", name: "platinum" }, template: {} }, /no plan 'platinum'/],
    [{ tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, plan: { product: "metered-analytics", name: "gold" } }, /exactly one of 'template'/],
    [{ tenantId: sb.world.isv.tenantId, subscriptionId: CUSTOMER_SUB, plan: { product: "metered-analytics", name: "gold" }, template: {} }, /belongs to tenant/],
  ];
  for (const [body, re] of cases) {
    const res = await purchase(body);
    assert.is(res.status, 400);
    assert.match(await res.text(), re);
  }
  const again = await purchase({ tenantId: CUSTOMER_TENANT, subscriptionId: CUSTOMER_SUB, applicationName: "third", managedResourceGroup: "mrg-northwind", plan: { product: "metered-analytics", name: "gold" }, template: {} });
  assert.is(again.status, 409);
  assert.is(sb.state.managedApps().length, before);
});

P("the Bicep compiler refuses what its modules do not support, at line and column", () => {
  const cases: Array<[string, RegExp]> = [
    ["module m 'br:mcr.microsoft.com/x:1' = {\n  name: 'm'\n}\n", /1:10: Registry and template spec modules/],
    ["module m './x.json' = {\n  name: 'm'\n}\n", /1:10: .*must name a \.bicep file/],
    ["module m './metering-identity.bicep' = {\n  name: 'm'\n  scope: resourceGroup('other')\n  params: {}\n}\n", /3:3: Module scopes are not supported/],
    ["module m './metering-identity.bicep' = {\n  name: 'm'\n  params: {\n    issuer: 'i'\n  }\n}\n", /missing the required parameter\(s\) 'subject'/],
    ["module m './metering-identity.bicep' = {\n  name: 'm'\n  params: {\n    issuer: 'i'\n    subject: 's'\n    nope: 1\n  }\n}\n", /6:5: The module 'm' has no parameter 'nope'/],
    ["module m './missing.bicep' = {\n  name: 'm'\n}\n", /1:10: An error occurred reading file/],
    ["module m './metering-identity.bicep' = {\n  name: 'm'\n  params: {\n    issuer: 'i'\n    subject: 's'\n  }\n}\noutput x string = m.outputs.nope\n", /8:19: The module 'm' has no output 'nope'/],
  ];
  for (const [source, re] of cases) {
    try {
      compileBicep(parseBicep(source, `${OFFER_DIR}test.bicep`));
      assert.unreachable(source);
    } catch (e) {
      assert.instance(e, BicepSyntaxError, String(e));
      assert.match((e as Error).message, re);
    }
  }
});

P("az deployment group create compiles a module by its relative path; ARM runs it as a nested deployment in the group", async () => {
  const c = sb.world.customers[0];
  const dir = await mkdtemp(join(tmpdir(), "offer-az-"));
  const az = (...argv: string[]) => admin<{ exitCode: number; stdout: string; stderr: string }>(sb, "POST", "/az", { argv: [...argv, "--output", "json"], cwd: dir });
  try {
    const rel = relative(dir, `${OFFER_DIR}app-identity-vault.bicep`);
    await writeFile(join(dir, "main.bicep"), `module kv '${rel}' = {\n  name: 'kv-module'\n  params: {\n    vaultName: 'az-module-kv'\n  }\n}\noutput uri string = kv.outputs.vaultUri\n`);
    const r = await az("deployment", "group", "create", "--subscription", c.subscriptionId, "-g", c.managedResourceGroup, "-n", "with-module", "-f", "main.bicep");
    assert.is(r.exitCode, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.properties.outputs.uri.value, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    const mrg = `/subscriptions/${c.subscriptionId}/resourceGroups/${c.managedResourceGroup}`;
    assert.ok(sb.state.getResource(`${mrg}/providers/Microsoft.KeyVault/vaults/az-module-kv`));
    const nested = sb.state.getResource(`${mrg}/providers/Microsoft.Resources/deployments/kv-module`)!;
    assert.is(nested.properties.provisioningState, "Succeeded");

    // The metering module's grants are for purchase time (same tenant): the publisher deploying it
    // itself into a customer's MRG is a cross-tenant write without the delegated id, and ARM refuses it.
    const meteringRel = relative(dir, `${OFFER_DIR}metering-identity.bicep`);
    await writeFile(join(dir, "publisher.bicep"), `module m '${meteringRel}' = {\n  name: 'metering-module'\n  params: {\n    uamiName: 'publisher-made'\n    issuer: '${ISSUER}'\n    subject: '${SUBJECT}'\n    roleDefinitionIds: [\n      '4633458b-17de-408a-b874-0445c86b69e6'\n    ]\n  }\n}\n`);
    const refused = await az("deployment", "group", "create", "--subscription", c.subscriptionId, "-g", c.managedResourceGroup, "-n", "publisher-metering", "-f", "publisher.bicep");
    assert.is(refused.exitCode, 1);
    assert.match(refused.stderr, /PrincipalNotFound/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

P.after(() => sb.stop());
P.run();
