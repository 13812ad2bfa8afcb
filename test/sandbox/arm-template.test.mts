// The ARM emulator's template engine on hand-written ARM JSON (sandbox/services/arm/template/):
// the expression language ("[…]", "[[" escapes, '' quotes), nested child resources, copy loops
// with copyIndex() offsets, conditions, if() evaluating one branch, reference() of resources
// outside the template, and the order dependsOn gives. A fake provider layer records the puts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseExpression } from "../../sandbox/services/arm/template/expression.mts";
import { ProviderError, TemplateDeploymentError, TemplateValidationError, deployTemplate, validateTemplate, type TemplateScope } from "../../sandbox/services/arm/template/engine.mts";

const RG = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg";
const SCOPE: TemplateScope = {
  subscriptionId: "00000000-0000-0000-0000-0000000000a1",
  tenantId: "00000000-0000-0000-0000-0000000000f1",
  resourceGroup: { id: RG, name: "rg", location: "westeurope" },
  deploymentName: "d",
  deployer: { objectId: "u", tenantId: "00000000-0000-0000-0000-0000000000f1" },
  environment: { name: "AzureCloud" },
};

async function run(template: unknown, parameters: Record<string, unknown> = {}, existing: Record<string, Record<string, unknown>> = {}) {
  const puts: Array<{ id: string; body: Record<string, unknown> }> = [];
  const v = await validateTemplate(template, Object.fromEntries(Object.entries(parameters).map(([k, value]) => [k, { value }])), SCOPE);
  const result = await deployTemplate(v, {
    put: async (id, _api, body) => {
      puts.push({ id, body });
      return { id, name: id.split("/").pop(), ...body, properties: { ...(body.properties as object ?? {}), provisioningState: "Succeeded", seen: id.split("/").pop() } };
    },
    get: async (id) => {
      if (!existing[id]) throw new ProviderError(404, { code: "ResourceNotFound", message: "nope" });
      return existing[id];
    },
  }, `${RG}/providers/Microsoft.Resources/deployments/d`);
  return { puts, outputs: result.outputs, validated: v };
}

const uami = (name: string, extra: Record<string, unknown> = {}) => ({ type: "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion: "2023-01-31", name, ...extra });

const T = suite("ARM template engine");

T("expressions: literals, '' escapes, '[[' literals, member and index access, function names in any case", async () => {
  const { outputs } = await run({
    resources: [],
    variables: { o: { a: [10, 20] } },
    outputs: {
      quote: { type: "string", value: "[concat('it''s', ' ', string(add(1, 2)))]" },
      literal: { type: "string", value: "[[not an expression]" },
      plain: { type: "string", value: "no [brackets] here" },
      index: { type: "int", value: "[variables('o').a[1]]" },
      upper: { type: "bool", value: "[EQUALS(toLower('A'), 'a')]" },
      fmt: { type: "string", value: "[format('{0}-{1}', 'x', 7)]" },
      obj: { type: "object", value: "[createObject('k', createArray(1, true(), null()))]" },
      env: { type: "string", value: "[environment().name]" },
      tryGet: { type: "bool", value: "[equals(tryGet(variables('o'), 'missing'), null())]" },
    },
  });
  assert.equal(outputs.quote.value, "it's 3");
  assert.equal(outputs.literal.value, "[not an expression]");
  assert.equal(outputs.plain.value, "no [brackets] here");
  assert.equal(outputs.index.value, 20);
  assert.equal(outputs.upper.value, true);
  assert.equal(outputs.fmt.value, "x-7");
  assert.equal(outputs.obj.value, { k: [1, true, null] });
  assert.equal(outputs.env.value, "AzureCloud");
  assert.equal(outputs.tryGet.value, true);
  assert.equal(parseExpression("[a('x').b[0]]").kind, "index");
});

T("nested child resources get full types and names and wait for their parent", async () => {
  const { puts } = await run({
    resources: [{
      type: "Microsoft.Storage/storageAccounts", apiVersion: "2025-06-01", name: "acct", location: "westeurope",
      resources: [{ type: "blobServices", apiVersion: "2025-06-01", name: "default", resources: [{ type: "containers", apiVersion: "2025-06-01", name: "public" }] }],
    }],
  });
  assert.equal(puts.map((p) => p.id.replace(RG, "")), [
    "/providers/Microsoft.Storage/storageAccounts/acct",
    "/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default",
    "/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/public",
  ]);
  assert.equal(puts[0].body, { location: "westeurope" }, "template-only properties (resources, dependsOn, …) are not sent");
});

T("copy loops with copyIndex(offset), dependsOn a loop by name, false conditions skip (and are ignored in dependsOn)", async () => {
  const { puts, validated } = await run({
    parameters: { n: { type: "int", defaultValue: 2 } },
    resources: [
      uami("after", { dependsOn: ["ids", "skipped"] }),
      uami("[concat('id', copyIndex(1))]", { copy: { name: "ids", count: "[parameters('n')]" } }),
      uami("skipped", { condition: "[equals(1, 2)]" }),
    ],
  });
  assert.equal(puts.map((p) => p.id.split("/").pop()), ["id1", "id2", "after"]);
  assert.equal(validated.resources.find((r) => r.name === "after")!.dependsOn.map((d) => d.split("/").pop()), ["id1", "id2"]);
});

T("if() evaluates only the branch it takes; reference() reads resources outside the template; parameters are case-insensitive", async () => {
  const outside = `${RG}/providers/Microsoft.KeyVault/vaults/old`;
  const { outputs } = await run({
    parameters: { Flag: { type: "bool" } },
    resources: [uami("u")],
    outputs: {
      pick: { type: "string", value: "[if(parameters('flag'), 'yes', variables('missing'))]" },
      old: { type: "string", value: `[reference('${outside}', '2025-05-01').vaultUri]` },
      full: { type: "string", value: "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'u'), '2023-01-31', 'Full').name]" },
      props: { type: "string", value: "[reference('u').seen]" },
    },
  }, { flag: true }, { [outside]: { id: outside, properties: { vaultUri: "https://old/" } } });
  assert.equal([outputs.pick.value, outputs.old.value, outputs.full.value, outputs.props.value], ["yes", "https://old/", "u", "u"]);
});

T("validation: cycles, duplicate ids, reference() in names, bad copy counts, wrong output types", async () => {
  const fails = async (template: unknown, message: RegExp, code = "InvalidTemplate") => {
    try {
      await run(template);
    } catch (e) {
      const err = e as TemplateValidationError | TemplateDeploymentError;
      assert.ok(err instanceof TemplateValidationError || err instanceof TemplateDeploymentError, String(e));
      assert.is(err.error.code, code);
      assert.match(JSON.stringify(err.error), message);
      return;
    }
    assert.unreachable(`expected ${message}`);
  };
  await fails({ resources: [uami("a", { dependsOn: ["b"] }), uami("b", { dependsOn: ["a"] })] }, /Circular dependency detected on resource: 'a', 'b'/);
  await fails({ resources: [uami("a"), uami("a")] }, /is defined multiple times in a template/);
  await fails({ resources: [uami("[reference('x').name]")] }, /The template function 'reference' is not expected at this location/);
  await fails({ resources: [uami("a", { copy: { name: "c", count: -1 } })] }, /The copy count must be an integer from 0 to 800/);
  await fails({ resources: [], outputs: { x: { type: "int", value: "text" } } }, /Expected a value of type 'Int', but received a value of type 'String'/, "DeploymentOutputEvaluationFailed");
  await fails({ resources: [uami("a", { properties: { x: "[div(1, 0)]" } })] }, /Attempted to divide by zero/, "DeploymentFailed");
  await fails({ resources: [uami("a", { properties: { copy: [{ name: "p", count: 1, input: {} }] } })] }, /Property copy loops/, "DeploymentFailed");
});

T.run();
