// Tests for the sandbox's Bicep subset (sandbox/az/bicep/: parser, checks, compiler to ARM JSON)
// together with the ARM emulator's template engine (sandbox/services/arm/template/) that runs
// the compiled template: `deploy()` below is what `az deployment group create` + ARM do, with
// a fake provider layer that records every put and answers with bodies shaped like the real
// providers' responses.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BicepSyntaxError } from "../../sandbox/az/bicep/errors.mts";
import { compileBicep, parseBicep } from "../../sandbox/az/bicep/evaluate.mts";
import { guid, uniqueString } from "../../sandbox/services/arm/template/functions.mts";
import type { ArmError } from "../../sandbox/az/bicep/types.mts";
import { ProviderError, TemplateDeploymentError, TemplateValidationError, deployTemplate, validateTemplate, type TemplateScope } from "../../sandbox/services/arm/template/engine.mts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ISV_SETUP = readFileSync(`${ROOT}templates/0-isv-setup.bicep`, "utf8");
const CONNECT_CUSTOMER = readFileSync(`${ROOT}templates/1-connect-customer.bicep`, "utf8");

const SUB = "00000000-0000-0000-0000-0000000000a1";
const TENANT = "00000000-0000-0000-0000-0000000000f1";
const RG_ID = `/subscriptions/${SUB}/resourceGroups/isv-rg`;
const USER = "11111111-2222-3333-4444-555555555555";
const CONTEXT: TemplateScope = {
  subscriptionId: SUB,
  tenantId: TENANT,
  resourceGroup: { id: RG_ID, name: "isv-rg", location: "westeurope" },
  deployer: { objectId: USER, tenantId: TENANT },
  deploymentName: "test-deployment",
  environment: { name: "AzureCloud", suffixes: { storage: "core.windows.net", keyvaultDns: ".vault.azure.net" } },
};

/** A rejected validation or deployment: ARM's code and error, and the resources put before it failed. */
class DeploymentError extends Error {
  code: string;
  error: ArmError;
  resourceIds: string[];
  constructor(error: ArmError, resourceIds: string[]) {
    super(error.message);
    this.code = error.code;
    this.error = error;
    this.resourceIds = resourceIds;
  }
}

interface Call {
  method: "PUT" | "GET";
  id: string;
  apiVersion: string;
  body?: Record<string, unknown>;
}

/** A fake ARM: records calls and returns what the real providers add to a PUT body. */
function fakeArm(opts: { failOn?: RegExp; existing?: Record<string, Record<string, unknown>> } = {}) {
  const calls: Call[] = [];
  const putResource = async (id: string, apiVersion: string, body: Record<string, unknown>) => {
    calls.push({ method: "PUT", id, apiVersion, body });
    if (opts.failOn?.test(id)) {
      throw new ProviderError(409, { code: "StorageAccountAlreadyTaken", message: "The storage account named x is already taken." });
    }
    const name = id.split("/").pop()!;
    const props = (body.properties ?? {}) as Record<string, unknown>;
    const out: Record<string, unknown> = { id, name, ...body, properties: { ...props, provisioningState: "Succeeded" } };
    const p = out.properties as Record<string, unknown>;
    if (/\/storageAccounts\/[^/]+$/.test(id)) p.primaryEndpoints = { blob: `https://${name}.blob.core.windows.net/`, dfs: `https://${name}.dfs.core.windows.net/`, web: `https://${name}.z6.web.core.windows.net/` };
    if (/\/vaults\/[^/]+$/.test(id)) p.vaultUri = `https://${name}.vault.azure.net/`;
    if (/\/keys\/[^/]+$/.test(id)) {
      const vault = id.split("/")[8];
      p.keyUri = `https://${vault}.vault.azure.net/keys/${name}`;
      p.keyUriWithVersion = `https://${vault}.vault.azure.net/keys/${name}/0123456789abcdef0123456789abcdef`;
    }
    if (/\/userAssignedIdentities\/[^/]+$/.test(id)) Object.assign(p, { clientId: "c1d2", principalId: "p1d2", tenantId: TENANT });
    return out;
  };
  const getResource = async (id: string, apiVersion: string) => {
    calls.push({ method: "GET", id, apiVersion });
    const found = opts.existing?.[id];
    if (!found) throw new ProviderError(404, { code: "ResourceNotFound", message: `The Resource '${id}' was not found.` });
    return found;
  };
  return { calls, putResource, getResource };
}

/** Compile (the az stand-in), validate and deploy (ARM's engine); plain parameter values. */
async function deploy(source: string, parameters: Record<string, unknown>, arm = fakeArm()) {
  const template = compileBicep(parseBicep(source, "main.bicep"));
  const put: string[] = [];
  try {
    const v = await validateTemplate(template, Object.fromEntries(Object.entries(parameters).map(([k, value]) => [k, { value }])), CONTEXT);
    const result = await deployTemplate(v, {
      put: async (id, apiVersion, body) => {
        const r = await arm.putResource(id, apiVersion, body);
        put.push(id);
        return r;
      },
      get: arm.getResource,
    }, `${RG_ID}/providers/Microsoft.Resources/deployments/test-deployment`);
    return { outputs: result.outputs, resourceIds: result.outputResources.map((r) => r.id), parameters: v.parameters, template };
  } catch (e) {
    if (e instanceof TemplateValidationError || e instanceof TemplateDeploymentError) throw new DeploymentError(e.error, put);
    throw e;
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.unreachable("expected a rejection");
}

function syntaxError(source: string): BicepSyntaxError {
  try {
    parseBicep(source, "t.bicep");
  } catch (e) {
    assert.instance(e, BicepSyntaxError);
    return e as BicepSyntaxError;
  }
  assert.unreachable("expected a BicepSyntaxError");
  throw new Error("unreachable");
}

// ---------------------------------------------------------------------------------------------
const parse = suite("parseBicep()");

parse("reads the ISV setup template's declarations", () => {
  const t = parseBicep(ISV_SETUP, "0-isv-setup.bicep");
  assert.is(t.targetScope, "resourceGroup");
  assert.equal(t.params.map((p) => [p.name, p.type, p.defaultValue !== undefined]), [
    ["location", "string", true],
    ["storageAccountName", "string", true],
    ["containerName", "string", true],
    ["issuerHost", "string", true],
    ["keyVaultName", "string", true],
    ["keyName", "string", true],
    ["keySize", "int", true],
    ["cryptoOfficerAssignmentName", "string", true],
    ["ledgerContainerName", "string", true],
    ["ledgerAssignmentName", "string", true],
    ["userObjectId", "string", false],
    ["userPrincipalType", "string", true],
  ]);
  const keySize = t.params.find((p) => p.name === "keySize")!;
  assert.equal(keySize.allowed, [2048, 3072, 4096]);
  assert.match(t.params.find((p) => p.name === "userObjectId")!.description ?? "", /Crypto Officer/);
  assert.equal(t.resources.map((r) => `${r.symbol} ${r.type}@${r.apiVersion}`), [
    "storage Microsoft.Storage/storageAccounts@2025-06-01",
    "blobServices Microsoft.Storage/storageAccounts/blobServices@2025-06-01",
    "container Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01",
    "vault Microsoft.KeyVault/vaults@2025-05-01",
    "key Microsoft.KeyVault/vaults/keys@2025-05-01",
    "cryptoOfficer Microsoft.Authorization/roleAssignments@2022-04-01",
    "blobDataContributor Microsoft.Authorization/roleAssignments@2022-04-01",
    "blobDataContributorOnAccount Microsoft.Authorization/roleAssignments@2022-04-01",
    "ledgerContainer Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01",
    "ledgerDataContributor Microsoft.Authorization/roleAssignments@2022-04-01",
  ]);
  assert.equal(t.params.find((p) => p.name === "issuerHost")!.allowed, ["blob", "static-website"]);
  assert.equal(t.params.find((p) => p.name === "userPrincipalType")!.allowed, ["User", "ServicePrincipal"]);
  assert.ok(t.resources.find((r) => r.symbol === "container")!.condition, "the public container is conditional");
  assert.ok(t.resources.find((r) => r.symbol === "ledgerContainer")!.condition, "the ledger container is conditional");
  assert.equal(t.outputs.map((o) => o.name), ["storageAccountName", "containerName", "blobEndpoint", "webEndpoint", "keyVaultName", "keyVaultUri", "keyUri", "keyUriWithVersion", "ledgerContainerName"]);
});

parse("reads the connect-customer template's declarations", () => {
  const t = parseBicep(CONNECT_CUSTOMER, "1-connect-customer.bicep");
  assert.equal(t.params.filter((p) => !p.defaultValue).map((p) => p.name), ["issuer", "subject"]);
  assert.equal(t.resources.map((r) => r.type), ["Microsoft.ManagedIdentity/userAssignedIdentities", "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"]);
  assert.equal(t.outputs.map((o) => o.name), ["uamiId", "uamiName", "uamiClientId", "uamiPrincipalId", "tenantId"]);
});

parse("reads the grants template: an existing vault and namespace, one resource loop per scope", () => {
  const t = parseBicep(readFileSync(new URL("../../templates/1-grant-roles.bicep", import.meta.url), "utf8"), "1-grant-roles.bicep");
  // delegatedManagedIdentityResourceId defaults to empty: a same-tenant grant leaves it out.
  assert.equal(t.params.filter((p) => !p.defaultValue).map((p) => p.name), ["principalId", "roleDefinitionIds"]);
  assert.ok(t.params.some((p) => p.name === "delegatedManagedIdentityResourceId" && p.defaultValue));
  assert.equal(t.resources.map((r) => r.type), ["Microsoft.KeyVault/vaults", "Microsoft.ServiceBus/namespaces", "Microsoft.Authorization/roleAssignments", "Microsoft.Authorization/roleAssignments", "Microsoft.Authorization/roleAssignments"]);
  assert.ok(t.resources.slice(2).every((r) => r.loop?.item === "roleDefinitionId"), "the grants are resource loops");
});

parse("refuses unsupported syntax with file, line and column", () => {
  const cases: Array<[string, number, number, RegExp]> = [
    ["param a string\nmodule m 'br/public:x:1' = {\n  name: 'm'\n}\n", 2, 10, /Registry and template spec modules .* are not supported by the sandbox's Bicep compiler/],
    ["param a string\nmodule m 'x.bicep' = [for i in range(0, 2): {\n  name: 'm'\n}]\n", 2, 22, /Module loops are not supported by the sandbox's Bicep compiler/],
    ["var xs = [for i in range(0, 3): i]\n", 1, 11, /'for' loops are not supported/],
    ["resource s 'Microsoft.Storage/storageAccounts@2025-06-01' existing = if (true) {\n  name: 'x'\n}\n", 1, 70, /Conditions on existing resources/],
    ["var f = x => x\n", 1, 9, /Lambda expressions are not supported/],
    ["var e = loadTextContent('x.txt')\n", 1, 9, /The function 'loadTextContent' is not supported by the sandbox's Bicep compiler/],
    ["\n\nvar s = \"double\"\n", 3, 9, /single quotes/],
    ["param p string[]\n", 1, 15, /Typed arrays/],
    ["param p 'a' | 'b'\n", 1, 9, /Literal and union types/],
    ["@batchSize(2)\nvar x = 1\n", 1, 1, /@batchSize is not supported/],
    ["resource s 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {\n  name: 'x'\n  resource c 'blobServices' = {\n    name: 'default'\n  }\n}\n", 3, 3, /Nested resource declarations are not supported by the sandbox's Bicep compiler here/],
    ["resource s 'Microsoft.Storage/storageAccounts@2025-06-01' = {\n  name: 'x'\n  resource c 'blobServices/containers@2025-06-01' = {\n    name: 'default'\n  }\n}\n", 3, 14, /must be a single segment/],
    ["var n = 1.5\n", 1, 9, /Floating-point/],
    ["resource s 'Microsoft.Storage/storageAccounts@2025-06-01' = {\n  name: 'x'\n}\nvar k = s.listKeys()\n", 4, 11, /Resource functions such as '\.listKeys\(\)'/],
  ];
  for (const [source, line, column, message] of cases) {
    const e = syntaxError(source);
    assert.is(e.code, "ERR_BICEP_SYNTAX");
    assert.equal([e.line, e.column], [line, column], source);
    assert.match(e.message, message);
    assert.ok(e.message.startsWith(`t.bicep:${line}:${column}: `), e.message);
  }
});

parse("reports unknown names, wrong function casing, arity and cycles at parse time", () => {
  assert.match(syntaxError("output o string = nope\n").message, /t\.bicep:1:19: The name 'nope' does not exist/);
  assert.match(syntaxError("var x = tolower('A')\n").message, /Did you mean 'toLower'\?/);
  assert.match(syntaxError("var x = substring('abc')\n").message, /expects 2 to 3 argument\(s\), got 1/);
  assert.match(syntaxError("var a = b\nvar b = a\n").message, /involved in a cycle/);
  assert.match(syntaxError("param a string = b\nvar b = 'x'\n").message, /Only other parameters can be referenced/);
  const cycle = [
    "resource a 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {\n  name: b.name\n}",
    "resource b 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {\n  name: a.name\n}",
  ].join("\n");
  assert.match(syntaxError(cycle).message, /dependency cycle/);
  assert.match(syntaxError("param p string\nparam p int\n").message, /declared multiple times/);
});

parse.run();

// ---------------------------------------------------------------------------------------------
const compile = suite("compileBicep()");

compile("nested child resources, environment() and resource loops become ARM JSON the engine deploys", async () => {
  const source = [
    "param names array = [",
    "  'a'",
    "  'b'",
    "]",
    "resource storage 'Microsoft.Storage/storageAccounts@2025-06-01' = {",
    "  name: 'acct'",
    "  location: 'westeurope'",
    "  resource blobs 'blobServices@2025-06-01' = {",
    "    name: 'default'",
    "    resource containers 'containers' = {",
    "      name: 'public'",
    "    }",
    "  }",
    "}",
    "resource ids 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for (n, i) in names: {",
    "  name: '${n}-${i}'",
    "  location: storage.location",
    "}]",
    "output suffix string = environment().suffixes.storage",
    "output url string = 'https://${storage.name}.blob.${environment().suffixes.storage}/'",
  ].join("\n");
  const tpl = parseBicep(source, "t.bicep");
  assert.equal(tpl.resources.map((r) => `${r.symbol} ${r.type}`), [
    "storage Microsoft.Storage/storageAccounts",
    "blobs Microsoft.Storage/storageAccounts/blobServices",
    "containers Microsoft.Storage/storageAccounts/blobServices/containers",
    "ids Microsoft.ManagedIdentity/userAssignedIdentities",
  ]);
  const arm = fakeArm();
  const result = await deploy(source, {}, arm);
  const resources = (result.template as { resources: Array<Record<string, unknown>> }).resources;
  assert.equal(resources[2], {
    type: "Microsoft.Storage/storageAccounts/blobServices/containers", apiVersion: "2025-06-01",
    name: "[format('{0}/{1}', format('{0}/{1}', 'acct', 'default'), 'public')]",
    dependsOn: ["[resourceId('Microsoft.Storage/storageAccounts/blobServices', 'acct', 'default')]"],
  });
  assert.equal(resources[3].copy, { name: "ids", count: "[length(parameters('names'))]" });
  assert.equal(resources[3].name, "[format('{0}-{1}', parameters('names')[copyIndex()], copyIndex())]");
  assert.equal(arm.calls.map((c) => c.id.replace(RG_ID, "")), [
    "/providers/Microsoft.Storage/storageAccounts/acct",
    "/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default",
    "/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/public",
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a-0",
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b-1",
  ]);
  assert.equal(arm.calls[3].body, { location: "westeurope" });
  assert.equal(result.outputs, { suffix: { type: "String", value: "core.windows.net" }, url: { type: "String", value: "https://acct.blob.core.windows.net/" } });
});

compile("a resource loop referenced from outside its loop is refused with line and column", () => {
  const e = (() => {
    try {
      compileBicep(parseBicep("resource ids 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for n in ['a']: {\n  name: n\n}]\noutput x string = ids[0].name\n", "t.bicep"));
    } catch (err) {
      return err as BicepSyntaxError;
    }
    throw new Error("expected an error");
  })();
  assert.instance(e, BicepSyntaxError);
  assert.equal([e.line, e.column], [4, 19]);
  assert.match(e.message, /Referencing the resource loop 'ids' from outside its loop/);
});

compile.run();

// ---------------------------------------------------------------------------------------------
const templates = suite("deployBicep() with the project's templates");

templates("ISV setup puts storage, container, vault, key and role assignment in order, with outputs", async () => {
  const arm = fakeArm();
  const result = await deploy(ISV_SETUP, { userObjectId: USER }, arm);
  const suffix = uniqueString(RG_ID);
  assert.match(suffix, /^[a-z2-7]{13}$/);
  const account = `idp${suffix}`;
  const vaultId = `${RG_ID}/providers/Microsoft.KeyVault/vaults/${account}`;
  const roleId = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
  const assignmentId = `${vaultId}/providers/Microsoft.Authorization/roleAssignments/${guid(vaultId, USER, roleId)}`;
  const containerId = `${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default/containers/public`;
  const blobRoleId = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
  assert.equal(arm.calls.map((c) => `${c.method} ${c.id}`), [
    `PUT ${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}`,
    `PUT ${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default`,
    `PUT ${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default/containers/public`,
    `PUT ${vaultId}`,
    `PUT ${vaultId}/keys/idpkey`,
    `PUT ${assignmentId}`,
    `PUT ${containerId}/providers/Microsoft.Authorization/roleAssignments/${guid(containerId, USER, blobRoleId)}`,
  ]);
  assert.equal(result.resourceIds, arm.calls.map((c) => c.id));
  const [storage, , container, vault, key, assignment] = arm.calls;
  assert.equal(storage.body, {
    location: "westeurope",
    kind: "StorageV2",
    sku: { name: "Standard_LRS" },
    properties: { allowBlobPublicAccess: true, minimumTlsVersion: "TLS1_2", supportsHttpsTrafficOnly: true },
  });
  assert.is(storage.apiVersion, "2025-06-01");
  assert.equal(container.body, { properties: { publicAccess: "Blob" } });
  assert.equal((vault.body!.properties as Record<string, unknown>).tenantId, TENANT);
  assert.is((vault.body!.properties as Record<string, unknown>).enableRbacAuthorization, true);
  assert.is((vault.body!.properties as Record<string, unknown>).enableSoftDelete, true);
  assert.equal(key.body, { properties: { kty: "RSA", keySize: 4096, keyOps: ["sign", "verify"] } });
  assert.equal(assignment.body, {
    properties: {
      roleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`,
      principalId: USER,
      principalType: "User",
    },
  });
  assert.equal(result.outputs, {
    storageAccountName: { type: "String", value: account },
    containerName: { type: "String", value: "public" },
    blobEndpoint: { type: "String", value: `https://${account}.blob.core.windows.net/` },
    webEndpoint: { type: "String", value: `https://${account}.z6.web.core.windows.net/` },
    keyVaultName: { type: "String", value: account },
    keyVaultUri: { type: "String", value: `https://${account}.vault.azure.net/` },
    keyUri: { type: "String", value: `https://${account}.vault.azure.net/keys/idpkey` },
    keyUriWithVersion: { type: "String", value: `https://${account}.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef` },
    ledgerContainerName: { type: "String", value: "" },
  });
  assert.equal(result.parameters.keySize, { type: "Int", value: 4096 });
  assert.equal(result.parameters.location, { type: "String", value: "westeurope" });
});

templates("ISV setup takes overrides, and the same inputs give the same names", async () => {
  const arm = fakeArm();
  const result = await deploy(ISV_SETUP, { userObjectId: USER, keySize: 2048, storageAccountName: "mystore", containerName: "issuer" }, arm);
  assert.is(result.outputs.storageAccountName.value, "mystore");
  assert.is(result.outputs.containerName.value, "issuer");
  assert.is(result.outputs.blobEndpoint.value, "https://mystore.blob.core.windows.net/");
  assert.equal((arm.calls[4].body!.properties as Record<string, unknown>).keySize, 2048);
  const again = await deploy(ISV_SETUP, { userObjectId: USER, keySize: 2048, storageAccountName: "mystore", containerName: "issuer" });
  assert.equal(again.resourceIds, result.resourceIds);
});

templates("ISV setup with issuerHost static-website: no public access, no container, the data role on the account ($web)", async () => {
  const arm = fakeArm();
  const result = await deploy(ISV_SETUP, { userObjectId: USER, issuerHost: "static-website" }, arm);
  const account = `idp${uniqueString(RG_ID)}`;
  const accountId = `${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}`;
  const blobRoleId = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
  const puts = arm.calls.map((c) => c.id);
  assert.not.ok(puts.some((id) => id.includes("/containers/")), "the condition leaves the public container out");
  assert.ok(puts.includes(`${accountId}/providers/Microsoft.Authorization/roleAssignments/${guid(accountId, USER, blobRoleId)}`), puts.join("\n"));
  assert.is((arm.calls[0].body!.properties as Record<string, unknown>).allowBlobPublicAccess, false);
  assert.is(result.outputs.containerName.value, "$web");
  assert.is(result.outputs.webEndpoint.value, `https://${account}.z6.web.core.windows.net/`);
  assert.is((result.template.resources as Array<Record<string, unknown>>).filter((r) => typeof r.condition === "string").length, 5, "compiled to ARM's condition (the ledger's two too)");
});

templates("ISV setup with ledgerContainerName: a private container, then the data role scoped to it, named by container, user and role", async () => {
  const arm = fakeArm();
  const result = await deploy(ISV_SETUP, { userObjectId: USER, ledgerContainerName: "ledger" }, arm);
  const account = `idp${uniqueString(RG_ID)}`;
  const ledgerId = `${RG_ID}/providers/Microsoft.Storage/storageAccounts/${account}/blobServices/default/containers/ledger`;
  const blobRoleId = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
  const ids = arm.calls.map((c) => c.id);
  const container = arm.calls.find((c) => c.id === ledgerId);
  assert.equal(container?.body, { properties: { publicAccess: "None" } });
  const roleAt = `${ledgerId}/providers/Microsoft.Authorization/roleAssignments/${guid(ledgerId, USER, blobRoleId)}`;
  assert.ok(ids.indexOf(roleAt) > ids.indexOf(ledgerId), ids.join("\n"));
  assert.equal(arm.calls.find((c) => c.id === roleAt)!.body, {
    properties: { roleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${blobRoleId}`, principalId: USER, principalType: "User" },
  });
  assert.is(result.outputs.ledgerContainerName.value, "ledger");
  assert.ok(ids.some((id) => id.endsWith("/containers/public")), "the issuer's container stays");

  // An assignment made by hand keeps its name; another principal gets another name.
  const byHand = fakeArm();
  await deploy(ISV_SETUP, { userObjectId: USER, ledgerContainerName: "ledger", ledgerAssignmentName: "11111111-2222-3333-4444-555555555555" }, byHand);
  assert.ok(byHand.calls.some((c) => c.id === `${ledgerId}/providers/Microsoft.Authorization/roleAssignments/11111111-2222-3333-4444-555555555555`));
  assert.not.equal(guid(ledgerId, USER, blobRoleId), guid(ledgerId, "another-principal", blobRoleId));
});

templates("connect-customer puts the identity, then its federated credential", async () => {
  const arm = fakeArm();
  const issuer = "https://idpabc.blob.core.windows.net/public";
  const result = await deploy(CONNECT_CUSTOMER, { issuer, subject: "metering-submission-via-uami from t1" }, arm);
  const uamiId = `${RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami`;
  assert.equal(arm.calls.map((c) => [c.id, c.apiVersion]), [
    [uamiId, "2023-01-31"],
    [`${uamiId}/federatedIdentityCredentials/fed`, "2023-01-31"],
  ]);
  assert.equal(arm.calls[0].body, { location: "westeurope" });
  assert.equal(arm.calls[1].body, { properties: { issuer, subject: "metering-submission-via-uami from t1", audiences: ["api://AzureADTokenExchange"] } });
  assert.equal(result.outputs, {
    uamiId: { type: "String", value: uamiId },
    uamiName: { type: "String", value: "metering-submission-uami" },
    uamiClientId: { type: "String", value: "c1d2" },
    uamiPrincipalId: { type: "String", value: "p1d2" },
    tenantId: { type: "String", value: TENANT },
  });
});

templates.run();

// ---------------------------------------------------------------------------------------------
const params = suite("deployBicep() parameter validation");

params("a missing required parameter is InvalidTemplate with ARM's message, and nothing is put", async () => {
  const arm = fakeArm();
  const e = (await rejection(deploy(ISV_SETUP, {}, arm))) as DeploymentError;
  assert.instance(e, DeploymentError);
  assert.is(e.code, "InvalidTemplate");
  assert.is(e.error.message, "Deployment template validation failed: 'The value for the template parameter 'userObjectId' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'.");
  assert.equal(e.error.additionalInfo, [{ type: "TemplateViolation", info: { lineNumber: 0, linePosition: 0, path: "properties.template.parameters.userObjectId" } }]);
  assert.equal(arm.calls, []);
});

params("unknown parameters are listed with the supported ones", async () => {
  const e = (await rejection(deploy(CONNECT_CUSTOMER, { issuer: "i", subject: "s", colour: "blue" }))) as DeploymentError;
  assert.is(e.code, "InvalidTemplate");
  assert.is(e.error.message, "Deployment template validation failed: 'The template parameters 'colour' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are 'location, uamiName, ficName, issuer, subject, audience'. Please see https://aka.ms/arm-pass-parameter-values for usage details.'.");
});

params("a value of the wrong type is refused", async () => {
  const e = (await rejection(deploy(ISV_SETUP, { userObjectId: USER, keySize: "4096" }))) as DeploymentError;
  assert.is(e.error.message, "Deployment template validation failed: 'Template parameter 'keySize' was provided an invalid value. Expected a value of type 'Int', but received a value of type 'String'. Please see https://aka.ms/arm-create-parameter-file for usage details.'.");
  const s = (await rejection(deploy(ISV_SETUP, { userObjectId: 42 }))) as DeploymentError;
  assert.match(s.error.message, /Expected a value of type 'String, Uri', but received a value of type 'Integer'/);
});

params("a value outside @allowed is refused", async () => {
  const e = (await rejection(deploy(ISV_SETUP, { userObjectId: USER, keySize: 1024 }))) as DeploymentError;
  assert.is(e.error.message, "Deployment template validation failed: 'The provided value for the template parameter 'keySize' is not valid. The value '1024' is not part of the allowed value(s): '2048,3072,4096'.'.");
});

params("length and value bounds are enforced, also on defaults", async () => {
  const e = (await rejection(deploy(ISV_SETUP, { userObjectId: USER, storageAccountName: "ab" }))) as DeploymentError;
  assert.match(e.error.message, /template parameter 'storageAccountName' is not valid\. Length of the value should be greater than or equal to '3'/);
  const src = "@minValue(1)\n@maxValue(5)\nparam n int = 9\noutput n int = n\n";
  const d = (await rejection(deploy(src, {}))) as DeploymentError;
  assert.match(d.error.message, /The value should be less than or equal to '5'/);
  assert.equal((await deploy(src, { n: 3 })).outputs.n, { type: "Int", value: 3 });
});

params("parameter names match case-insensitively, as in ARM", async () => {
  const result = await deploy(CONNECT_CUSTOMER, { Issuer: "https://i", SUBJECT: "s" });
  assert.is(result.parameters.issuer.value, "https://i");
});

params("secure parameters are recorded without their value", async () => {
  const result = await deploy("@secure()\nparam secret string\noutput n int = length(secret)\n", { secret: "hunter2" });
  assert.equal(result.parameters.secret, { type: "SecureString" });
  assert.equal(result.outputs.n.value, 7);
});

params.run();

// ---------------------------------------------------------------------------------------------
const expr = suite("deployBicep() expressions");

async function outputs(source: string, parameters: Record<string, unknown> = {}) {
  const result = await deploy(source, parameters);
  return Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.value]));
}

expr("strings: interpolation, escapes and multi-line", async () => {
  const o = await outputs([
    "param name string = 'World'",
    "var n = 3",
    "output a string = 'Hello, ${name}! ${n + 1} ${true} ${toUpper(name)}'",
    "output b string = 'it\\'s \\${not} a\\\\b\\tc\\u{41}'",
    "output c string = '''",
    "line one",
    "  it's ${raw}'''",
    "output d string = 'nested ${'x${n}y'} done'",
  ].join("\n"));
  assert.is(o.a, "Hello, World! 4 True WORLD");
  assert.is(o.b, "it's ${not} a\\b\tcA");
  assert.is(o.c, "line one\n  it's ${raw}");
  assert.is(o.d, "nested x3y done");
});

expr("operators: precedence, comparison, logic, ternary, coalesce", async () => {
  const o = await outputs([
    "param flag bool = false",
    "output arith int = 1 + 2 * 3 - -4 % 3",
    "output div int = -7 / 2",
    "output cmp bool = 3 >= 3 && 2 < 1 || !flag",
    "output eq bool = 'AbC' =~ 'abc' && 'a' != 'b' && [1, {x: 'y'}] == [1, {x: 'y'}]",
    "output tern string = flag ? 'yes' : 2 > 1 ? 'nested' : 'no'",
    "output co string = null ?? 'fallback'",
  ].join("\n"));
  assert.equal(o, { arith: 8, div: -3, cmp: true, eq: true, tern: "nested", co: "fallback" });
});

expr("objects, arrays, member and index access, safe access", async () => {
  const o = await outputs([
    "var obj = {",
    "  name: 'n'",
    "  'quoted-key': 1",
    "  nested: { list: [ 'a', 'b' ], inner: { deep: true } }",
    "}",
    "var arr = [",
    "  1",
    "  2, 3",
    "]",
    "output a string = obj.nested.list[1]",
    "output b int = obj['quoted-key'] + arr[2]",
    "output c bool = obj.NESTED.inner.deep",
    "output d string = obj.?missing ?? 'safe'",
    "output e object = { v: arr[?7] }",
    "output f array = arr",
  ].join("\n"));
  assert.equal(o, { a: "b", b: 4, c: true, d: "safe", e: { v: null }, f: [1, 2, 3] });
});

expr("functions", async () => {
  const o = await outputs([
    "output lower string = toLower('ABC')",
    "output fmt string = format('{0}-{1}-{{x}}', 'a', 2)",
    "output sub string = substring('abcdef', 1, 3)",
    "output split array = split('a,b;c', [',', ';'])",
    "output joined string = join(['a', 'b'], '+')",
    "output concat1 string = concat('a', 'b', 1)",
    "output concat2 array = concat([1], [2, 3])",
    "output has bool = contains('abc', 'b') && contains([1, 2], 2) && contains({ Key: 1 }, 'key')",
    "output un object = union({ a: 1, n: { x: 1 } }, { b: 2, n: { y: 2 } })",
    "output ua array = union([1, 2], [2, 3])",
    "output misc array = [length('abc'), length([1]), empty(''), empty({}), first('xy'), last([1, 2]), take('abcd', 2), skip([1, 2, 3], 2)]",
    "output conv array = [string(true), string({ a: 1 }), int('42'), bool('TRUE'), json('{\"k\": [1]}')]",
    "output str array = [replace('a-b-c', '-', '.'), trim('  x '), base64('hi'), coalesce(null, null, 'c'), startsWith('Hello', 'he'), endsWith('Hello', 'LO')]",
    "output ids array = [resourceId('Microsoft.KeyVault/vaults/keys', 'v', 'k'), resourceId('other-rg', 'Microsoft.Storage/storageAccounts', 's'), subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r'), tenantResourceId('Microsoft.Management/managementGroups', 'm'), extensionResourceId('/x/y', 'Microsoft.Authorization/locks', 'l')]",
    "output ctx array = [resourceGroup().name, resourceGroup().location, subscription().subscriptionId, subscription().tenantId, tenant().tenantId, deployment().name, deployer().objectId]",
    "output gu string = guid('a', 'b')",
    "output us string = uniqueString('a', 'b')",
  ].join("\n"));
  assert.is(o.lower, "abc");
  assert.is(o.fmt, "a-2-{x}");
  assert.is(o.sub, "bcd");
  assert.equal(o.split, ["a", "b", "c"]);
  assert.is(o.joined, "a+b");
  assert.is(o.concat1, "ab1");
  assert.equal(o.concat2, [1, 2, 3]);
  assert.is(o.has, true);
  assert.equal(o.un, { a: 1, n: { x: 1, y: 2 }, b: 2 });
  assert.equal(o.ua, [1, 2, 3]);
  assert.equal(o.misc, [3, 1, true, true, "x", 2, "ab", [3]]);
  assert.equal(o.conv, ["True", '{"a":1}', 42, true, { k: [1] }]);
  assert.equal(o.str, ["a.b.c", "x", "aGk=", "c", true, true]);
  assert.equal(o.ids, [
    `${RG_ID}/providers/Microsoft.KeyVault/vaults/v/keys/k`,
    `/subscriptions/${SUB}/resourceGroups/other-rg/providers/Microsoft.Storage/storageAccounts/s`,
    `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/r`,
    "/providers/Microsoft.Management/managementGroups/m",
    "/x/y/providers/Microsoft.Authorization/locks/l",
  ]);
  assert.equal(o.ctx, ["isv-rg", "westeurope", SUB, TENANT, TENANT, "test-deployment", USER]);
  assert.is(o.gu, guid("a", "b"));
  assert.match(o.gu as string, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.is.not(o.gu, guid("a", "c"));
  assert.is(o.us, uniqueString("a", "b"));
});

expr("interpolated property names, as in userAssignedIdentities", async () => {
  const arm = fakeArm();
  await deploy([
    "resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {",
    "  name: 'id1'",
    "  location: 'x'",
    "}",
    "resource app 'Microsoft.Web/sites@2024-04-01' = {",
    "  name: 'app'",
    "  location: 'x'",
    "  identity: {",
    "    type: 'UserAssigned'",
    "    userAssignedIdentities: { '${uami.id}': {} }",
    "  }",
    "}",
  ].join("\n"), {}, arm);
  const uamiId = `${RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1`;
  assert.equal(arm.calls.map((c) => c.id.split("/").pop()), ["id1", "app"]);
  assert.equal(arm.calls[1].body!.identity, { type: "UserAssigned", userAssignedIdentities: { [uamiId]: {} } });
});

expr("runtime expression errors fail the output with ARM's wording", async () => {
  const missing = (await rejection(deploy("var o = { a: 1, b: 2 }\noutput x int = o.c\n", {}))) as DeploymentError;
  assert.is(missing.code, "DeploymentOutputEvaluationFailed");
  assert.match(missing.error.details![0].message, /The template output 'x' is not valid: The language expression property 'c' doesn't exist, available properties are 'a, b'\./);
  const plus = (await rejection(deploy("output x string = 'a' + 'b'\n", {}))) as DeploymentError;
  assert.match(plus.error.details![0].message, /The template function 'add' expects integers, not 'String'\./);
  const typed = (await rejection(deploy("output x int = 'text'\n", {}))) as DeploymentError;
  assert.match(typed.error.details![0].message, /Expected a value of type 'Int', but received a value of type 'String'/);
  const range = (await rejection(deploy("output x string = substring('abc', 2, 5)\n", {}))) as DeploymentError;
  assert.match(range.error.details![0].message, /The index and length parameters must refer to a location within the string/);
});

expr.run();

// ---------------------------------------------------------------------------------------------
const order = suite("deployBicep() resources");

order("dependencies come first whatever the declaration order: parent, references, dependsOn", async () => {
  const source = [
    "resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {",
    "  name: guid(vault.id, 'u')",
    "  scope: vault",
    "  properties: { principalId: 'u' }",
    "}",
    "resource key 'Microsoft.KeyVault/vaults/keys@2025-05-01' = {",
    "  parent: vault",
    "  name: 'k'",
    "  properties: { kty: 'RSA' }",
    "}",
    "resource marker 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {",
    "  name: 'marker'",
    "  location: 'x'",
    "  dependsOn: [ late ]",
    "}",
    "var vaultName = 'v${length(resourceGroup().name)}'",
    "resource vault 'Microsoft.KeyVault/vaults@2025-05-01' = {",
    "  name: vaultName",
    "  location: resourceGroup().location",
    "}",
    "resource late 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {",
    "  name: 'late'",
    "  location: 'x'",
    "}",
  ].join("\n");
  const arm = fakeArm();
  await deploy(source, {}, arm);
  const vaultId = `${RG_ID}/providers/Microsoft.KeyVault/vaults/v6`;
  assert.equal(arm.calls.map((c) => c.id.replace(RG_ID, "")), [
    "/providers/Microsoft.KeyVault/vaults/v6",
    `/providers/Microsoft.KeyVault/vaults/v6/providers/Microsoft.Authorization/roleAssignments/${guid(vaultId, "u")}`,
    "/providers/Microsoft.KeyVault/vaults/v6/keys/k",
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/late",
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/marker",
  ]);
});

order("child resources may also be named 'parent/child' without parent:", async () => {
  const arm = fakeArm();
  await deploy("resource c 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {\n  name: 'acct/default/public'\n}\n", {}, arm);
  assert.is(arm.calls[0].id, `${RG_ID}/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/public`);
  const bad = (await rejection(deploy("resource c 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {\n  name: 'acct'\n}\n", {}))) as DeploymentError;
  assert.is(bad.code, "InvalidTemplate");
  assert.match(bad.error.message, /incorrect segment lengths/);
});

order("existing resources are read, not written, and usable like deployed ones", async () => {
  const id = `${RG_ID}/providers/Microsoft.KeyVault/vaults/old`;
  const arm = fakeArm({ existing: { [id]: { id, name: "old", properties: { vaultUri: "https://old.vault.azure.net/" } } } });
  const result = await deploy([
    "resource old 'Microsoft.KeyVault/vaults@2025-05-01' existing = {",
    "  name: 'old'",
    "}",
    "resource key 'Microsoft.KeyVault/vaults/keys@2025-05-01' = {",
    "  parent: old",
    "  name: 'k'",
    "}",
    "output uri string = old.properties.vaultUri",
  ].join("\n"), {}, arm);
  // As in ARM: an existing resource is read when an expression needs it (here the output).
  assert.equal(arm.calls.map((c) => `${c.method} ${c.id}`), [`PUT ${id}/keys/k`, `GET ${id}`]);
  assert.equal(result.resourceIds, [`${id}/keys/k`]);
  assert.is(result.outputs.uri.value, "https://old.vault.azure.net/");
});

order("a failed put stops the deployment: DeploymentFailed with the provider's error", async () => {
  const arm = fakeArm({ failOn: /vaults\/[^/]+$/ });
  const e = (await rejection(deploy(ISV_SETUP, { userObjectId: USER }, arm))) as DeploymentError;
  assert.is(e.code, "DeploymentFailed");
  assert.is(e.error.target, `${RG_ID}/providers/Microsoft.Resources/deployments/test-deployment`);
  assert.match(e.error.message, /^At least one resource deployment operation failed/);
  assert.equal(e.error.details, [{ code: "StorageAccountAlreadyTaken", message: "The storage account named x is already taken." }]);
  assert.is(arm.calls.length, 4);
  assert.is(e.resourceIds.length, 3);
});

order.run();
