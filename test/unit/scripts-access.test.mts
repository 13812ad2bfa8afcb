// The 3-* scripts and 1-connect-customer --grant as processes, with the fake `az` of
// test/unit/fixtures on PATH and no network: --help, argument checks before anything runs, and the
// grant parameters handed to the connect template. The sandbox e2e tests cover the Azure side.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bashEraConfig, CUSTOMER_SUB, tempDir } from "./_support.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const MRG_ID = `/subscriptions/${CUSTOMER_SUB}/resourceGroups/mrg-new`;
const APP_ID = `/subscriptions/${CUSTOMER_SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app2`;

function run(script: string, args: string[], env: Record<string, string>, stdin = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, ...pre] = tsRunner();
  return new Promise((res, rej) => {
    const child = spawn(cmd, [...pre, join(ROOT, "scripts", script), ...args], {
      cwd: ROOT, env: { PATH: `${join(HERE, "fixtures")}:${process.env.PATH}`, HOME: "/nonexistent", ...env },
    });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    child.on("close", (code) => res({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

async function setup() {
  const tmp = await tempDir();
  const env = { METERING_DATA_DIR: tmp.dir, FAKE_AZ_WORLD: join(tmp.dir, "world.json"), FAKE_AZ_LOG: join(tmp.dir, "az.log") };
  await writeFile(env.FAKE_AZ_WORLD, JSON.stringify({
    account: { id: "22222222-2222-4222-8222-222222222222", tenantId: "11111111-1111-4111-8111-111111111111", user: { name: "isv@example.com", type: "user" } },
    rest: {
      [`/subscriptions/${CUSTOMER_SUB}/resourcegroups/mrg-new`]: { name: "mrg-new", managedBy: APP_ID },
      [`${MRG_ID}/providers/Microsoft.Authorization/roleAssignments`.toLowerCase()]: { value: [] },
      [APP_ID.toLowerCase()]: { id: APP_ID, kind: "MarketPlace", plan: { name: "gold" }, properties: { managedResourceGroupId: MRG_ID, provisioningState: "Succeeded", billingDetails: { resourceUsageId: "77777777-7777-4777-8777-777777777777" } } },
    },
    deployments: {
      "1-connect-customer.bicep": {
        uamiId: `${MRG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami`, uamiName: "metering-submission-uami",
        uamiClientId: "88888888-8888-4888-8888-888888888888", uamiPrincipalId: "99999999-9999-4999-8999-999999999999", tenantId: "44444444-4444-4444-8444-444444444444",
      },
      "1-grant-roles.bicep": {},
    },
  }));
  await writeFile(join(tmp.dir, "config.json"), JSON.stringify(bashEraConfig(), null, 2));
  const azCalls = async () => (await readFile(env.FAKE_AZ_LOG, "utf8").catch(() => "")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]);
  return { ...tmp, env, azCalls, config: async () => JSON.parse(await readFile(join(tmp.dir, "config.json"), "utf8")) };
}

const help = suite("3-* --help");
for (const script of ["3-token.mts", "3-managed-app.mts", "3-keyvault-secret.mts", "3-servicebus.mts"]) {
  help(`${script} prints its usage and exits 0; an unknown flag is exit 2`, async () => {
    const r = await run(script, ["--help"], {});
    assert.is(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: ${script.replace(".", "\\.")}`));
    assert.match(r.stdout, /Exit codes/);
    const bad = await run(script, ["--bogus"], {});
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /^Cannot parse arguments: Unknown option '--bogus'/);
  });
}
help.run();

const grant = suite("1-connect-customer.mts --grant");
grant("passes the role definition ids to the grants template, with the UAMI's principal and resource id, and records them", async () => {
  const t = await setup();
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "mrg-new", "--grant", "Key Vault Secrets Officer", "--grant", "service bus data sender"], t.env);
    assert.is(r.code, 0, r.stderr);
    const deploys = (await t.azCalls()).filter((a) => a[0] === "deployment");
    assert.equal(deploys.map((d) => d[d.indexOf("--template-file") + 1].split("/").pop()), ["1-connect-customer.bicep", "1-grant-roles.bicep"]);
    const params = JSON.parse(deploys[1][deploys[1].indexOf("--parameters") + 1]);
    assert.equal(params.roleDefinitionIds, { value: ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"] });
    assert.equal(params.principalId, { value: "99999999-9999-4999-8999-999999999999" });
    assert.equal(params.delegatedManagedIdentityResourceId, { value: `${MRG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami` });
    assert.equal(params.scopeKind, { value: "resourceGroup" });
    assert.equal((await t.config()).customers[CUSTOMER_SUB]["mrg-new"].grantedRoleDefinitionIds, ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"]);
    assert.match(r.stdout, /grants\s+Key Vault Secrets Officer, Azure Service Bus Data Sender/);
  } finally {
    await t.cleanup();
  }
});
grant("an unknown role is exit 2 before az is called", async () => {
  const t = await setup();
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "mrg-new", "--grant", "Global Administrator"], t.env);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^Cannot grant role "Global Administrator"/);
    assert.equal(await t.azCalls(), []);
  } finally {
    await t.cleanup();
  }
});
grant.run();

const input = suite("3-* argument checks before anything runs");
input("a secret on argv, a bad vault name, a bad queue: exit 2, az never called", async () => {
  const t = await setup();
  try {
    const cases: Array<[string, string[], RegExp]> = [
      ["3-keyvault-secret.mts", [CUSTOMER_SUB, "mrg-new", "kv1", "set", "name", "s3cret"], /Cannot take a secret value from the command line/],
      ["3-keyvault-secret.mts", [CUSTOMER_SUB, "mrg-new", "k", "get", "name"], /Cannot use vault "k"/],
      ["3-servicebus.mts", [CUSTOMER_SUB, "mrg-new", "namespace1", "send", "-bad"], /Cannot parse arguments|Cannot use queue/],
      ["3-servicebus.mts", [CUSTOMER_SUB, "mrg-new", "namespace1", "receive", "q", "--wait", "999"], /--wait/],
      ["3-token.mts", ["not-a-guid", "mrg-new", "arm"], /subscription/],
      ["3-managed-app.mts", [CUSTOMER_SUB, "mrg-new", "list-tokens", "--delete", "00000000-0000-0000-0000-000000000000"], /belongs to role-assignments/],
    ];
    for (const [script, args, re] of cases) {
      const r = await run(script, args, t.env, "value");
      assert.is(r.code, 2, `${script} ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.not.match(r.stderr, /s3cret/);
    }
    assert.equal(await t.azCalls(), []);
  } finally {
    await t.cleanup();
  }
});
input.run();
