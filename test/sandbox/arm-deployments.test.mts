// ARM deployments as a plain HTTPS client sees them (the requests azure-cli and the SDKs send):
// POST …/validate, PUT (201 Accepted + Azure-AsyncOperation), polling operationStatuses,
// GET …/operations, outputs as {type, value}, resources created through the same providers a
// direct PUT uses, InvalidTemplate for what the engine does not support, DeploymentFailed.
// The templates are ARM JSON from the az stand-in's Bicep compiler and hand-written ARM JSON.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { compileBicep, parseBicep } from "../../sandbox/az/bicep/evaluate.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const sb = await startTestSandbox();
const ARM = sb.endpoints.arm;
const isv = sb.world.isv;
const API = "api-version=2022-09-01";

async function token(): Promise<string> {
  return (await sb.tokens.issue({ tenantId: isv.tenantId, audience: "https://management.azure.com/", objectId: isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test" })).token;
}

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function arm(method: string, pathOrUrl: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${await token()}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(pathOrUrl.startsWith("http") ? pathOrUrl : ARM + pathOrUrl, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

const rgPath = `/subscriptions/${isv.subscriptionId}/resourceGroups/deploy-rg`;
const deployments = `${rgPath}/providers/Microsoft.Resources/deployments`;
const ISV_SETUP = compileBicep(parseBicep(readFileSync(`${ROOT}templates/0-isv-setup.bicep`, "utf8"), "0-isv-setup.bicep"));
const CONNECT = compileBicep(parseBicep(readFileSync(`${ROOT}templates/1-connect-customer.bicep`, "utf8"), "1-connect-customer.bicep"));
const GRANTS = compileBicep(parseBicep(readFileSync(`${ROOT}templates/1-grant-roles.bicep`, "utf8"), "1-grant-roles.bicep"));

/** Polls the Azure-AsyncOperation URL as azure-core's ARM poller does; returns the statuses seen. */
async function poll(url: string): Promise<Answer[]> {
  const seen: Answer[] = [];
  for (let i = 0; i < 200; i++) {
    const a = await arm("GET", url);
    seen.push(a);
    if (["Succeeded", "Failed", "Canceled"].includes(a.json?.status)) return seen;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the deployment did not finish");
}

const Deploy = suite("Microsoft.Resources/deployments run templates");

Deploy.before(async () => {
  const a = await arm("PUT", `${rgPath}?api-version=2021-04-01`, { location: "westeurope" });
  assert.ok(a.status === 201 || a.status === 200, JSON.stringify(a.json));
});
Deploy.after(() => sb.stop());

Deploy("validate answers 200 with the validated resources and creates nothing", async () => {
  const body = { properties: { mode: "Incremental", template: CONNECT, parameters: { issuer: { value: "https://idp.example/public" }, subject: { value: "s" }, uamiName: { value: "validate-only" } } } };
  const v = await arm("POST", `${deployments}/v1/validate?${API}`, body);
  assert.is(v.status, 200, JSON.stringify(v.json));
  assert.is(v.json.properties.provisioningState, "Succeeded");
  assert.equal(v.json.properties.validatedResources.map((r: { id: string }) => r.id), [
    `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/validate-only`,
    `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/validate-only/federatedIdentityCredentials/fed`,
  ]);
  assert.equal(v.json.properties.parameters.uamiName, { type: "String", value: "validate-only" });
  assert.is((await arm("GET", `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/validate-only?api-version=2023-01-31`)).status, 404);
  assert.is((await arm("GET", `${deployments}/v1?${API}`)).status, 404, "validation records no deployment");
});

Deploy("PUT answers 201 Accepted with Azure-AsyncOperation; the deployment runs, creates the resources and returns typed outputs", async () => {
  const body = { properties: { mode: "Incremental", template: ISV_SETUP, parameters: { userObjectId: { value: isv.userObjectId }, keySize: { value: 2048 } } } };
  const put = await arm("PUT", `${deployments}/isv-setup?${API}`, body);
  assert.is(put.status, 201, JSON.stringify(put.json));
  assert.is(put.json.properties.provisioningState, "Accepted");
  assert.is(put.json.id, `${rgPath}/providers/Microsoft.Resources/deployments/isv-setup`);
  assert.is(put.json.properties.template, undefined, "ARM does not echo the template");
  const asyncUrl = put.headers.get("azure-asyncoperation")!;
  assert.match(asyncUrl, new RegExp(`^${ARM}${rgPath}/providers/Microsoft.Resources/deployments/isv-setup/operationStatuses/[0-9A-F]{16}\\?api-version=2022-09-01$`));
  assert.ok(put.headers.get("retry-after"));
  const statuses = await poll(asyncUrl);
  assert.equal(statuses.at(-1)!.json, { status: "Succeeded" });

  const d = (await arm("GET", `${deployments}/isv-setup?${API}`)).json;
  assert.is(d.properties.provisioningState, "Succeeded", JSON.stringify(d.properties.error));
  const vaultName = d.properties.outputs.keyVaultName.value as string;
  assert.equal(Object.keys(d.properties.outputs).sort(), ["blobEndpoint", "containerName", "keyUri", "keyUriWithVersion", "keyVaultName", "keyVaultUri", "ledgerContainerName", "storageAccountName", "webEndpoint"]);
  assert.is(d.properties.outputs.containerName.type, "String");
  assert.match(d.properties.outputs.keyVaultUri.value, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  assert.match(d.properties.outputs.keyUriWithVersion.value, /\/keys\/idpkey\/[0-9a-f]{32}$/);
  assert.equal(d.properties.parameters.keySize, { type: "Int", value: 2048 });
  assert.is(d.properties.outputResources.length, 7);

  // The resources exist, as a direct PUT would have made them.
  const vault = await arm("GET", `${rgPath}/providers/Microsoft.KeyVault/vaults/${vaultName}?api-version=2025-05-01`);
  assert.is(vault.status, 200);
  assert.is(vault.json.properties.vaultUri, d.properties.outputs.keyVaultUri.value);

  // One operation per resource, then the outputs.
  const ops = (await arm("GET", `${deployments}/isv-setup/operations?${API}`)).json.value;
  assert.is(ops.length, 8);
  assert.ok(ops.slice(0, 7).every((o: { properties: { provisioningOperation: string; provisioningState: string; statusCode: string } }) =>
    o.properties.provisioningOperation === "Create" && o.properties.provisioningState === "Succeeded" && o.properties.statusCode === "OK"));
  assert.equal(ops.slice(0, 5).map((o: { properties: { targetResource: { resourceType: string } } }) => o.properties.targetResource.resourceType), [
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.KeyVault/vaults",
    "Microsoft.KeyVault/vaults/keys",
  ]);
  assert.is(ops[7].properties.provisioningOperation, "EvaluateDeploymentOutput");
  const one = await arm("GET", `${deployments}/isv-setup/operations/${ops[0].operationId}?${API}`);
  assert.equal(one.json, ops[0]);
  const list = (await arm("GET", `${deployments}?${API}`)).json.value.map((x: { name: string }) => x.name);
  assert.ok(list.includes("isv-setup"));
});

Deploy("the setup template with ledgerContainerName: a private container and Storage Blob Data Contributor scoped to it; again, the same assignment", async () => {
  const params = { userObjectId: { value: isv.userObjectId }, keySize: { value: 2048 }, ledgerContainerName: { value: "ledger-d" } };
  const assignmentsAt = (scope: string) => sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((r) =>
    String(r.properties.scope).toLowerCase() === scope.toLowerCase() && String(r.properties.principalId) === isv.userObjectId &&
    String(r.properties.roleDefinitionId).endsWith("/ba92f5b4-2d11-453d-a403-e96b0029c9fe"));
  let containerId = "";
  for (const run of ["first", "again"]) {
    const put = await arm("PUT", `${deployments}/isv-setup-ledger?${API}`, { properties: { mode: "Incremental", template: ISV_SETUP, parameters: params } });
    assert.is(put.status, run === "first" ? 201 : 200, JSON.stringify(put.json));
    await poll(put.headers.get("azure-asyncoperation")!);
    const d = (await arm("GET", `${deployments}/isv-setup-ledger?${API}`)).json;
    assert.is(d.properties.provisioningState, "Succeeded", JSON.stringify(d.properties.error));
    assert.equal(d.properties.outputs.ledgerContainerName, { type: "String", value: "ledger-d" });
    containerId = `${rgPath}/providers/Microsoft.Storage/storageAccounts/${d.properties.outputs.storageAccountName.value}/blobServices/default/containers/ledger-d`;
    const container = await arm("GET", `${containerId}?api-version=2025-06-01`);
    assert.is(container.status, 200, JSON.stringify(container.json));
    assert.is(container.json.properties.publicAccess, "None");
    assert.is(assignmentsAt(containerId).length, 1, `${run}: one assignment at the container`);
  }
  // Without the parameter the deployment makes no ledger container (the stand-in name is not deployed).
  const put = await arm("PUT", `${deployments}/isv-setup-none?${API}`, { properties: { mode: "Incremental", template: ISV_SETUP, parameters: { ...params, ledgerContainerName: { value: "" } } } });
  await poll(put.headers.get("azure-asyncoperation")!);
  const d = (await arm("GET", `${deployments}/isv-setup-none?${API}`)).json;
  assert.is(d.properties.provisioningState, "Succeeded", JSON.stringify(d.properties.error));
  assert.is(d.properties.outputs.ledgerContainerName.value, "");
  assert.is((await arm("GET", `${containerId.replace(/ledger-d$/, "none")}?api-version=2025-06-01`)).status, 404);
});

Deploy("the setup template for a service principal (automation, a managed identity): as a User it fails UnmatchedPrincipalType; with userPrincipalType ServicePrincipal it succeeds", async () => {
  const mi = isv.managedIdentity!.principalId;
  const run = async (name: string, extra: Record<string, { value: unknown }>) => {
    const put = await arm("PUT", `${deployments}/${name}?${API}`, { properties: { mode: "Incremental", template: ISV_SETUP, parameters: { userObjectId: { value: mi }, keySize: { value: 2048 }, ...extra } } });
    assert.is(put.status, 201, JSON.stringify(put.json));
    return (await poll(put.headers.get("azure-asyncoperation")!)).at(-1)!.json;
  };
  const ofMi = () => sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((r) => String(r.properties.principalId) === mi);
  const asUser = await run("isv-setup-sp-as-user", {});
  assert.is(asUser.status, "Failed");
  assert.match(JSON.stringify(asUser.error), /UnmatchedPrincipalType/);
  assert.is(ofMi().length, 0, "no assignment of the wrong type was made");
  const asSp = await run("isv-setup-sp", { userPrincipalType: { value: "ServicePrincipal" } });
  assert.is(asSp.status, "Succeeded", JSON.stringify(asSp));
  assert.equal(ofMi().map((r) => r.properties.principalType), ["ServicePrincipal", "ServicePrincipal"], "Crypto Officer on the vault, the data role on the container");
});

Deploy("copy loops: the grants template makes one role assignment per role for the identity the connect template created", async () => {
  const roles = ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "4633458b-17de-408a-b874-0445c86b69e6"];
  const body = { properties: { mode: "Incremental", template: CONNECT, parameters: { issuer: { value: "https://idp.example/public" }, subject: { value: "s" } } } };
  const put = await arm("PUT", `${deployments}/connect?${API}`, body);
  assert.is(put.status, 201, JSON.stringify(put.json));
  await poll(put.headers.get("azure-asyncoperation")!);
  const d = (await arm("GET", `${deployments}/connect?${API}`)).json;
  assert.is(d.properties.provisioningState, "Succeeded", JSON.stringify(d.properties.error));
  const uami = (await arm("GET", `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami?api-version=2023-01-31`)).json;
  assert.equal(d.properties.outputs.uamiPrincipalId, { type: "String", value: uami.properties.principalId });
  assert.equal(d.properties.outputs.uamiClientId.value, uami.properties.clientId);
  // The ISV's own subscription: a same-tenant grant, so no delegatedManagedIdentityResourceId (ARM refuses it here).
  const grants = { properties: { mode: "Incremental", template: GRANTS, parameters: {
    principalId: { value: uami.properties.principalId }, roleDefinitionIds: { value: roles },
  } } };
  const g = await arm("PUT", `${deployments}/grants?${API}`, grants);
  assert.is(g.status, 201, JSON.stringify(g.json));
  await poll(g.headers.get("azure-asyncoperation")!);
  const gd = (await arm("GET", `${deployments}/grants?${API}`)).json;
  assert.is(gd.properties.provisioningState, "Succeeded", JSON.stringify(gd.properties.error));
  const assignments = (await arm("GET", `${rgPath}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()`)).json.value
    .filter((r: { properties: { principalId: string } }) => r.properties.principalId === uami.properties.principalId);
  assert.equal(assignments.map((r: { properties: { roleDefinitionId: string } }) => r.properties.roleDefinitionId.split("/").pop()).sort(), [...roles].sort());
  assert.equal(gd.properties.outputResources.map((r: { id: string }) => r.id).sort(), assignments.map((r: { id: string }) => r.id).sort());
  assert.ok(assignments.every((r: { properties: { delegatedManagedIdentityResourceId?: unknown } }) => r.properties.delegatedManagedIdentityResourceId == null));
});

Deploy("InvalidTemplate: unsupported functions, unknown dependsOn, missing parameters; on validate and on PUT, nothing created", async () => {
  const template = (resources: unknown[], extra: Record<string, unknown> = {}) => ({ $schema: "x", contentVersion: "1.0.0.0", resources, ...extra });
  const uami = (name: string, extra: Record<string, unknown> = {}) => ({ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name, location: "westeurope", ...extra });
  const cases: Array<[unknown, RegExp]> = [
    [template([uami("u1", { tags: { k: "[listKeys('x', '2020-01-01')]" } })]), /The template function 'listKeys' at 'resources\[0\]\.tags\.k' is not valid \(list\* functions are not supported\): it is not supported by the sandbox's template engine/],
    [template([uami("u2", { tags: { k: "[pickZones('a')]" } })]), /The template function 'pickZones' .* is not valid: it is not supported by the sandbox's template engine/],
    [template([uami("u3", { dependsOn: ["[resourceId('Microsoft.Storage/storageAccounts', 'nope')]"] })]), /The resource '\/subscriptions\/.*\/storageAccounts\/nope' is not defined in the template/],
    [template([uami("u4")], { functions: [{ namespace: "x" }] }), /User-defined functions are not supported/],
    [template({ u: uami("u5") } as unknown as unknown[], { languageVersion: "2.0" }), /languageVersion \(symbolic-name templates\) is not supported/],
    [template([{ ...uami("u6"), type: "Microsoft.Resources/deployments", properties: { mode: "Incremental", template: template([]) } }]), /nested deployment at 'resources\[0\]' evaluates its template in the outer scope, which is not supported/],
    [template([{ ...uami("u6"), type: "Microsoft.Resources/deployments", properties: { mode: "Incremental", templateLink: { uri: "https://x" } } }]), /nested deployment at 'resources\[0\]' uses 'templateLink', which is not supported/],
    [template([uami("u7")], { parameters: { p: { type: "string" } } }), /The value for the template parameter 'p' is not provided/],
    [template([uami("[concat('u8', 'x']")]), /The template language expression .* is not valid/],
  ];
  for (const [tpl, message] of cases) {
    const body = { properties: { mode: "Incremental", template: tpl } };
    const v = await arm("POST", `${deployments}/bad/validate?${API}`, body);
    assert.is(v.status, 400, JSON.stringify(v.json));
    assert.is(v.json.error.code, "InvalidTemplate");
    assert.match(v.json.error.message, /^Deployment template validation failed: '/);
    assert.match(v.json.error.message, message);
    const put = await arm("PUT", `${deployments}/bad?${API}`, body);
    assert.is(put.status, 400);
    assert.equal(put.json.error, v.json.error);
  }
  assert.is((await arm("GET", `${deployments}/bad?${API}`)).status, 404);
  for (const n of ["u1", "u2", "u3", "u4", "u7"]) {
    assert.is((await arm("GET", `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${n}?api-version=2023-01-31`)).status, 404);
  }
  // Request-level problems and unsupported deployment options.
  const noTemplate = await arm("PUT", `${deployments}/bad?${API}`, { properties: { mode: "Incremental" } });
  assert.equal([noTemplate.status, noTemplate.json.error.code], [400, "InvalidRequestContent"]);
  const complete = await arm("PUT", `${deployments}/bad?${API}`, { properties: { mode: "Complete", template: template([]) } });
  assert.equal([complete.status, complete.json.error.code], [400, "InvalidTemplateDeployment"]);
  const link = await arm("POST", `${deployments}/bad/validate?${API}`, { properties: { mode: "Incremental", templateLink: { uri: "https://x" } } });
  assert.equal([link.status, link.json.error.code], [400, "InvalidTemplateDeployment"]);
  const kvRef = await arm("POST", `${deployments}/bad/validate?${API}`, { properties: { mode: "Incremental", template: template([], { parameters: { p: { type: "securestring" } } }), parameters: { p: { reference: { keyVault: { id: "x" }, secretName: "s" } } } } });
  assert.equal([kvRef.status, kvRef.json.error.code], [400, "InvalidTemplateDeployment"]);
  assert.match(kvRef.json.error.message, /Key Vault reference is not supported/);
});

Deploy("TemplateViolation names the line and column of the offending value in the request, also in az's unquoted-key body", async () => {
  const template = {
    $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion: "1.0.0.0",
    resources: [{ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name: "[nosuchfunction()]", location: "westeurope" }],
  };
  const templateText = JSON.stringify(template, null, 2);
  /** Line and column (1-based) where `needle` starts in `text`. */
  const at = (text: string, needle: string) => {
    const before = text.slice(0, text.indexOf(needle));
    return { lineNumber: before.split("\n").length, linePosition: before.length - before.lastIndexOf("\n") };
  };
  for (const text of [
    JSON.stringify({ properties: { mode: "Incremental", template } }, null, 2),
    // What az 2.45 sends: the template file's text under an unquoted key.
    `{"properties": {"parameters": {}, "mode": "Incremental", template:${templateText}}}`,
  ]) {
    const res = await fetch(`${ARM}${deployments}/positions/validate?${API}`, { method: "POST", headers: { authorization: `Bearer ${await token()}`, "content-type": "application/json" }, body: text });
    const json = await res.json() as { error: { code: string; additionalInfo: Array<{ type: string; info: Record<string, unknown> }> } };
    assert.is(res.status, 400);
    assert.is(json.error.code, "InvalidTemplate");
    assert.equal(json.error.additionalInfo, [{ type: "TemplateViolation", info: { ...at(text, '"[nosuchfunction()]"'), path: "properties.template.resources[0].name" } }]);
  }
});

Deploy("a failing resource: Failed with DeploymentFailed, the operation carries the provider's error, earlier resources stay", async () => {
  const template = {
    contentVersion: "1.0.0.0",
    resources: [
      { type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name: "first", location: "westeurope" },
      {
        type: "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials", apiVersion: "2023-01-31", name: "first/fic",
        dependsOn: ["[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'first')]"],
        properties: { issuer: "https://i", subject: "s", audiences: ["a", "b"] },
      },
    ],
    outputs: { never: { type: "string", value: "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'first'), '2023-01-31').clientId]" } },
  };
  const put = await arm("PUT", `${deployments}/broken?${API}`, { properties: { mode: "Incremental", template } });
  assert.is(put.status, 201, JSON.stringify(put.json));
  const statuses = await poll(put.headers.get("azure-asyncoperation")!);
  const last = statuses.at(-1)!.json;
  assert.is(last.status, "Failed");
  assert.is(last.error.code, "DeploymentFailed");
  assert.is(last.error.target, `${rgPath}/providers/Microsoft.Resources/deployments/broken`);
  assert.match(last.error.message, /^At least one resource deployment operation failed\. Please list deployment operations for details\./);
  assert.is(last.error.details[0].code, "BadRequest");
  const d = (await arm("GET", `${deployments}/broken?${API}`)).json;
  assert.is(d.properties.provisioningState, "Failed");
  assert.equal(d.properties.error, last.error);
  assert.equal(d.properties.outputResources, [{ id: `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/first` }]);
  assert.is(d.properties.outputs, undefined);
  const ops = (await arm("GET", `${deployments}/broken/operations?${API}`)).json.value;
  assert.equal(ops.map((o: { properties: { provisioningState: string } }) => o.properties.provisioningState), ["Succeeded", "Failed"]);
  assert.is(ops[1].properties.statusCode, "BadRequest");
  assert.equal(ops[1].properties.statusMessage.error, last.error.details[0]);
  assert.is((await arm("GET", `${rgPath}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/first?api-version=2023-01-31`)).status, 200);
});

Deploy("deployment names, modes, missing deployments and unknown operations answer in ARM's words", async () => {
  const bad = await arm("PUT", `${deployments}/bad%20name?${API}`, { properties: { mode: "Incremental", template: {} } });
  assert.equal([bad.status, bad.json.error.code], [400, "InvalidDeploymentName"]);
  const mode = await arm("PUT", `${deployments}/m?${API}`, { properties: { mode: "Sometimes", template: {} } });
  assert.equal([mode.status, mode.json.error.code], [400, "InvalidRequestContent"]);
  const none = await arm("GET", `${deployments}/none?${API}`);
  assert.equal([none.status, none.json.error.code], [404, "DeploymentNotFound"]);
  const op = await arm("GET", `${deployments}/isv-setup/operationStatuses/0000000000000000?${API}`);
  assert.equal([op.status, op.json.error.code], [404, "OperationNotFound"]);
});

Deploy.run();
