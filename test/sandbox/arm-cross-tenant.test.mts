// Role assignments by tenant (docs/azure-behaviour.md §5.4): a publisher reading or deleting role
// assignments in a customer's managed resource group names the customer's tenant with
// `&tenantId=`; a wrong tenant is refused. And the Bicep resource loops of the grants template
// (templates/1-grant-roles.bicep), through the az stand-in's compiler and ARM's template engine.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { compileBicep, parseBicep } from "../../sandbox/az/bicep/evaluate.mts";
import { TemplateDeploymentError, TemplateValidationError, deployTemplate, validateTemplate } from "../../sandbox/services/arm/template/engine.mts";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { arm, grantRole } from "../helpers/arm.mts";

const sb = await startTestSandbox({ azurite: false });
const customer = sb.world.customers[1];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
const RA = `${mrg}/providers/Microsoft.Authorization/roleAssignments`;
const API = "api-version=2022-04-01";

const T = suite("cross-tenant role assignments");

T("listing in the customer's MRG needs &tenantId=<customer tenant>; the wrong tenant is refused", async () => {
  const principal = randomUUID();
  await grantRole(sb, mrg, principal, ROLE.KeyVaultSecretsUser);
  const without = await arm(sb, "GET", `${RA}?${API}&$filter=atScope()`);
  assert.is(without.status, 403);
  assert.match(without.json.error.message, new RegExp(`tenantId=${customer.tenantId}`));
  const wrong = await arm(sb, "GET", `${RA}?${API}&tenantId=${sb.world.isv.tenantId}`);
  assert.is(wrong.status, 403);
  const ok = await arm(sb, "GET", `${RA}?${API}&tenantId=${customer.tenantId}&$filter=atScope()`);
  assert.is(ok.status, 200);
  assert.ok(ok.json.value.some((r: { properties: { principalId: string } }) => r.properties.principalId === principal));
});

T("deleting needs the tenant too, and removes the assignment", async () => {
  const principal = randomUUID();
  await grantRole(sb, mrg, principal, ROLE.ServiceBusDataSender);
  const all = await arm(sb, "GET", `${RA}?${API}&tenantId=${customer.tenantId}&$filter=principalId eq '${principal}'`);
  const name = all.json.value[0].name;
  assert.is((await arm(sb, "DELETE", `${RA}/${name}?${API}`)).status, 403);
  assert.is((await arm(sb, "DELETE", `${RA}/${name}?${API}&tenantId=${customer.tenantId}`)).status, 200);
  const left = await admin<Array<{ properties: { principalId: string } }>>(sb, "GET", `/role-assignments?scope=${encodeURIComponent(mrg)}`);
  assert.not.ok(left.some((r) => r.properties.principalId === principal));
});

T("the option turns the requirement off", async () => {
  await admin(sb, "PATCH", "/options", { arm: { crossTenantRoleAssignmentsNeedTenantId: false } });
  try {
    assert.is((await arm(sb, "GET", `${RA}?${API}`)).status, 200);
  } finally {
    await admin(sb, "PATCH", "/options", { arm: { crossTenantRoleAssignmentsNeedTenantId: true } });
  }
});

T("same tenant: an assignment naming delegatedManagedIdentityResourceId is refused (400), one without it is made; the option turns that off", async () => {
  const sub = `/subscriptions/${sb.world.isv.subscriptionId}`;
  const body = (delegated?: string | null) => ({
    properties: {
      roleDefinitionId: `${sub}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultSecretsUser}`,
      principalId: randomUUID(), principalType: "ServicePrincipal",
      ...(delegated !== undefined ? { delegatedManagedIdentityResourceId: delegated } : {}),
    },
  });
  const path = () => `${sub}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?${API}`;
  const refused = await arm(sb, "PUT", path(), body(`${sub}/resourceGroups/x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u`));
  assert.is(refused.status, 400);
  assert.is(refused.json.error.code, "BadRequest");
  assert.match(refused.json.error.message, /same tenant .* only for a managed identity of another tenant/);
  assert.is((await arm(sb, "PUT", path(), body())).status, 201);
  assert.is((await arm(sb, "PUT", path(), body(null))).status, 201);
  await admin(sb, "PATCH", "/options", { arm: { sameTenantRefusesDelegatedId: false } });
  try {
    assert.is((await arm(sb, "PUT", path(), body(`${sub}/resourceGroups/x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u`))).status, 201);
  } finally {
    await admin(sb, "PATCH", "/options", { arm: { sameTenantRefusesDelegatedId: true } });
  }
});

T.run();

const Loops = suite("Bicep resource loops (grants template)");
const GRANTS = readFileSync(fileURLToPath(new URL("../../templates/1-grant-roles.bicep", import.meta.url)), "utf8");

function context() {
  return {
    subscriptionId: customer.subscriptionId,
    tenantId: customer.tenantId,
    resourceGroup: { id: mrg, name: customer.managedResourceGroup, location: "westeurope" },
    deployer: { objectId: sb.world.isv.userObjectId, tenantId: sb.world.isv.tenantId },
    deploymentName: "loop-test",
    environment: {},
  };
}

/** The az stand-in's compiler, then ARM's template engine, with `putResource` as the providers. */
async function deployBicep(o: { source: string; fileName: string; parameters: Record<string, unknown>; context: ReturnType<typeof context>; putResource: (id: string, v: string, body: Record<string, unknown>) => Promise<Record<string, unknown>>; getResource: unknown }) {
  const template = compileBicep(parseBicep(o.source, o.fileName));
  try {
    const v = await validateTemplate(template, Object.fromEntries(Object.entries(o.parameters).map(([k, value]) => [k, { value }])), o.context);
    const r = await deployTemplate(v, { put: o.putResource, get: o.getResource as (id: string, v: string) => Promise<Record<string, unknown>> }, `${mrg}/providers/Microsoft.Resources/deployments/loop-test`);
    return { outputs: r.outputs, resourceIds: r.outputResources.map((x) => x.id) };
  } catch (e) {
    if (e instanceof TemplateValidationError || e instanceof TemplateDeploymentError) throw Object.assign(new Error(e.message), { error: e.error });
    throw e;
  }
}

Loops("one role assignment per role at the chosen scope, named from scope, principal and role, with delegatedManagedIdentityResourceId", async () => {
  const puts: Array<{ id: string; body: any }> = [];
  const put = async (id: string, _v: string, body: Record<string, unknown>) => {
    puts.push({ id, body });
    return { id, properties: { ...(body.properties as object) } };
  };
  const uamiId = `${mrg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u`;
  const params = { principalId: "11111111-1111-1111-1111-111111111111", delegatedManagedIdentityResourceId: uamiId };
  const none = await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { ...params, roleDefinitionIds: [] }, context: context(), putResource: put, getResource: put as any });
  assert.is(puts.length, 0);
  assert.is(none.resourceIds.length, 0);
  const roles = [ROLE.KeyVaultSecretsOfficer, ROLE.ServiceBusDataSender];
  await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { ...params, roleDefinitionIds: roles }, context: context(), putResource: put, getResource: put as any });
  assert.is(puts.length, 2);
  assert.ok(puts.every((p) => p.id.startsWith(`${mrg}/providers/Microsoft.Authorization/roleAssignments/`)));
  assert.equal(puts.map((r) => r.body.properties.roleDefinitionId), roles.map((r) => `/subscriptions/${customer.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${r}`));
  assert.ok(puts.every((r) => r.body.properties.principalId === params.principalId && r.body.properties.principalType === "ServicePrincipal" && r.body.properties.delegatedManagedIdentityResourceId === uamiId));
  assert.is.not(puts[0].id, puts[1].id);
  const first = puts.map((p) => p.id);
  puts.length = 0;
  await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { ...params, roleDefinitionIds: roles }, context: context(), putResource: put, getResource: put as any });
  assert.equal(puts.map((p) => p.id), first, "same names on redeployment");
  puts.length = 0;
  await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { ...params, principalId: "22222222-2222-2222-2222-222222222222", roleDefinitionIds: roles }, context: context(), putResource: put, getResource: put as any });
  assert.ok(puts.every((p, i) => p.id !== first[i]), "another principal, other names");
  puts.length = 0;
  await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { ...params, roleDefinitionIds: [ROLE.KeyVaultSecretsUser], scopeKind: "vault", scopeName: "kv1" }, context: context(), putResource: put, getResource: put as any });
  assert.is(puts.length, 1);
  assert.ok(puts[0].id.startsWith(`${mrg}/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/roleAssignments/`), puts[0].id);
  // A same-tenant grant passes no delegated id: the assignments carry null (ARM's "not set").
  puts.length = 0;
  await deployBicep({ source: GRANTS, fileName: "g.bicep", parameters: { principalId: params.principalId, roleDefinitionIds: [ROLE.KeyVaultSecretsUser] }, context: context(), putResource: put, getResource: put as any });
  assert.equal(puts.map((p) => p.body.properties.delegatedManagedIdentityResourceId), [null]);
});

Loops("loop syntax: index form, a non-array is a template error, filters are refused", async () => {
  const src = `param xs array\nresource ids 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for (x, i) in xs: {\n  name: 'id-\${i}-\${x}'\n  location: 'westeurope'\n}]\noutput n int = length(xs)\n`;
  const got: string[] = [];
  const put = async (id: string) => { got.push(id); return { id, properties: {} }; };
  const r = await deployBicep({ source: src, fileName: "l.bicep", parameters: { xs: ["a", "b"] }, context: context(), putResource: put, getResource: put as any });
  assert.equal(got.map((id) => id.split("/").pop()), ["id-0-a", "id-1-b"]);
  assert.is(r.outputs.n.value, 2);
  let e: any;
  try {
    await deployBicep({ source: src.replace("param xs array", "param xs object"), fileName: "l.bicep", parameters: { xs: { a: 1 } }, context: context(), putResource: put, getResource: put as any });
  } catch (err) {
    e = err;
  }
  assert.match(JSON.stringify(e?.error ?? e?.message), /Cannot index a value of type 'Object' with a value of type 'Integer'/);
  let syntax: any;
  try {
    await deployBicep({ source: src.replace("in xs:", "in xs: if (true)"), fileName: "l.bicep", parameters: { xs: [] }, context: context(), putResource: put, getResource: put as any });
  } catch (err) {
    syntax = err;
  }
  assert.match(String(syntax?.message), /not supported/);
});

Loops.after(() => sb.stop());
Loops.run();
