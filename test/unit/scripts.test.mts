// The scripts as processes, with a stand-in `az` on PATH and no network: argument handling,
// exit codes, stdout/stderr, and what lands in config.json and audit.jsonl. The end-to-end
// tests against the sandbox cover the Azure side (Key Vault, Entra, metering).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bashEraConfig, CUSTOMER_SUB, PUBLISHER_TENANT, tempDir } from "./_support.mts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
declare const Deno: { execPath(): string } | undefined;

function runner(): string[] {
  if (typeof Deno !== "undefined") return [Deno.execPath(), "run", "-A"];
  return (process.features as { typescript?: unknown }).typescript ? [process.execPath] : [process.execPath, "--import", "tsx"];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[], env: Record<string, string>, cwd = ROOT): Promise<Run> {
  // `--import tsx` is looked up from the working directory: give tsx's own path instead.
  const [cmd, ...pre] = runner().map((a) => (a === "tsx" ? import.meta.resolve("tsx") : a));
  return new Promise((res, rej) => {
    const child = spawn(cmd, [...pre, join(ROOT, "scripts", script), ...args], {
      cwd,
      // A clean environment: no real credentials or endpoints can leak in.
      env: { PATH: `${join(HERE, "fixtures")}:${process.env.PATH}`, HOME: env.HOME ?? "/nonexistent", ...env },
    });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    child.on("close", (code) => res({ code, stdout, stderr }));
  });
}

const MRG = "mrg-app1-20240101";
const APP_ID = `/subscriptions/${CUSTOMER_SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app1`;
const MRG_ID = `/subscriptions/${CUSTOMER_SUB}/resourceGroups/mrg-new`;
const NEW_APP_ID = `/subscriptions/${CUSTOMER_SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app2`;

function world() {
  return {
    account: { id: "22222222-2222-4222-8222-222222222222", tenantId: PUBLISHER_TENANT, user: { name: "isv@example.com", type: "user" } },
    apps: [1, 2],
    graphRows: [
      { id: NEW_APP_ID, subscriptionId: CUSTOMER_SUB, managedResourceGroupId: MRG_ID, plan: { name: "gold" }, provisioningState: "Succeeded", resourceUsageId: "77777777-7777-4777-8777-777777777777" },
      { id: APP_ID, subscriptionId: CUSTOMER_SUB, managedResourceGroupId: `/subscriptions/${CUSTOMER_SUB}/resourceGroups/${MRG}`, plan: { name: "silver" }, provisioningState: "Succeeded" },
    ],
    rest: {
      [`/subscriptions/${CUSTOMER_SUB}/resourcegroups/mrg-new`]: { name: "mrg-new", managedBy: NEW_APP_ID },
      [NEW_APP_ID.toLowerCase()]: {
        id: NEW_APP_ID, kind: "MarketPlace", plan: { name: "gold" },
        properties: { managedResourceGroupId: MRG_ID, provisioningState: "Succeeded", billingDetails: { resourceUsageId: "77777777-7777-4777-8777-777777777777" } },
      },
      [`/subscriptions/${CUSTOMER_SUB}/resourcegroups/plain-rg`]: { name: "plain-rg" },
    },
    deployments: {
      "1-connect-customer.bicep": {
        uamiId: `${MRG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami`,
        uamiName: "metering-submission-uami",
        uamiClientId: "88888888-8888-4888-8888-888888888888",
        uamiPrincipalId: "99999999-9999-4999-8999-999999999999",
        tenantId: "44444444-4444-4444-8444-444444444444",
      },
    },
  };
}

async function setup(config?: unknown) {
  const tmp = await tempDir();
  const env = { METERING_DATA_DIR: tmp.dir, FAKE_AZ_WORLD: join(tmp.dir, "world.json"), FAKE_AZ_LOG: join(tmp.dir, "az.log") };
  await writeFile(env.FAKE_AZ_WORLD, JSON.stringify(world()));
  if (config !== undefined) await writeFile(join(tmp.dir, "config.json"), JSON.stringify(config, null, 2));
  const azCalls = async () => (await readFile(env.FAKE_AZ_LOG, "utf8").catch(() => "")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]);
  const config_ = async () => JSON.parse(await readFile(join(tmp.dir, "config.json"), "utf8"));
  return { ...tmp, env, azCalls, config: config_ };
}

const help = suite("every script --help");
for (const script of ["0-add-defaults.mts", "0-isv-setup.mts", "1-list-customers.mts", "1-connect-customer.mts", "1-disconnect-customer.mts", "2-emit-meter.mts", "doctor.mts"]) {
  help(`${script} prints its usage and exits 0`, async () => {
    const r = await run(script, ["--help"], {});
    assert.is(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: ${script.replace(".", "\\.")}`));
    assert.match(r.stdout, /Exit codes/);
    assert.is(r.stderr, "");
  });
  help(`${script} rejects an unknown flag with exit 2, one line and a pointer to --help`, async () => {
    const r = await run(script, ["--bogus"], {});
    assert.is(r.code, 2);
    assert.is(r.stderr, "Cannot parse arguments: Unknown option '--bogus'\nRun with --help for usage\n");
    assert.is(r.stdout, "");
  });
}
help.run();

const defaults = suite("0-add-defaults.mts");
defaults("writes publisher defaults from az account show, keeping other keys", async () => {
  const t = await setup({ publisher: { location: "northeurope", extra: 1 }, customers: {} });
  try {
    const r = await run("0-add-defaults.mts", ["--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), {
      aadTenantId: PUBLISHER_TENANT, subscriptionId: "22222222-2222-4222-8222-222222222222",
      resourceGroup: "marketplace-metering-idp-backend", location: "northeurope",
    });
    const config = await t.config();
    assert.is(config.publisher.extra, 1);
    assert.is((await stat(join(t.dir, "config.json"))).mode & 0o777, 0o600);
    assert.equal(await t.azCalls(), [["account", "show", "--output", "json", "--only-show-errors"]]);
    const again = await run("0-add-defaults.mts", [], t.env);
    assert.match(again.stderr, /already up to date/);
  } finally {
    await t.cleanup();
  }
});
defaults("a bad --resource-group is a usage error that calls nothing", async () => {
  const t = await setup();
  try {
    const r = await run("0-add-defaults.mts", ["--resource-group", "bad."], t.env);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^Cannot use --resource-group "bad\.": /);
    assert.equal(await t.azCalls(), []);
  } finally {
    await t.cleanup();
  }
});
defaults("an az failure is one line with az's error and exit 1", async () => {
  const t = await setup();
  try {
    await writeFile(t.env.FAKE_AZ_WORLD, JSON.stringify({ ...world(), fail: { "account show": "Please run 'az login' to setup account." } }));
    const r = await run("0-add-defaults.mts", [], t.env);
    assert.is(r.code, 1);
    assert.is(r.stderr, "Cannot run az account show: Please run 'az login' to setup account.\n");
    await stat(join(t.dir, "config.json")).then(() => assert.unreachable("config written"), () => {});
  } finally {
    await t.cleanup();
  }
});
defaults.run();

const list = suite("1-list-customers.mts");
list("prints a table with connected yes/no that fits 80 columns; the subscription is shortened in the middle", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("1-list-customers.mts", [], t.env);
    assert.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[0], /^SUBSCRIPTION\s+MANAGED RESOURCE GROUP\s+PLAN\s+STATE\s+CONNECTED$/);
    assert.match(lines[1], new RegExp(`^${CUSTOMER_SUB.slice(0, 8)}\\S*…\\S*${CUSTOMER_SUB.slice(-6)}\\s+${MRG}\\s+silver\\s+Succeeded\\s+yes$`));
    assert.match(lines[2], /mrg-new\s+gold\s+Succeeded\s+no$/);
    for (const line of lines) assert.ok([...line].length <= 80, `${[...line].length} columns: ${line}`);
    assert.match(r.stderr, /^2 managed application\(s\), 1 connected \(ids shortened: --wide for full values\)$/m);
  } finally {
    await t.cleanup();
  }
});
list("--wide prints full values and the application id, however wide", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("1-list-customers.mts", ["--wide"], t.env);
    assert.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[0], /^SUBSCRIPTION\s+MANAGED RESOURCE GROUP\s+PLAN\s+STATE\s+CONNECTED\s+APP\s+MANAGED APP ID$/);
    assert.match(lines[1], new RegExp(`^${CUSTOMER_SUB}\\s+${MRG}\\s+silver\\s+Succeeded\\s+yes\\s+app1\\s+${APP_ID.replace(/\//g, "\\/")}$`));
    assert.not.match(r.stdout, /…/);
    const both = await run("1-list-customers.mts", ["--wide", "--json"], t.env);
    assert.is(both.code, 2);
    assert.is(JSON.parse(both.stdout).error.code, "ERR_USAGE");
  } finally {
    await t.cleanup();
  }
});
list("no managed application: the header and a line that says so", async () => {
  const t = await setup(bashEraConfig());
  try {
    await writeFile(t.env.FAKE_AZ_WORLD, JSON.stringify({ ...world(), graphRows: [] }));
    const r = await run("1-list-customers.mts", [], t.env);
    assert.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[0], /^SUBSCRIPTION/);
    for (const line of lines) assert.ok([...line].length <= 80, line);
    assert.match(lines[1], /^\(none: the signed-in user sees no managed application/);
  } finally {
    await t.cleanup();
  }
});
list("--json prints the rows as data", async () => {
  const t = await setup();
  try {
    const r = await run("1-list-customers.mts", ["--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout);
    assert.equal(rows.map((x: { managedResourceGroup: string; connected: boolean }) => [x.managedResourceGroup, x.connected]), [[MRG, false], ["mrg-new", false]]);
  } finally {
    await t.cleanup();
  }
});
list.run();

const connect = suite("1-connect-customer.mts");
connect("run from another directory, it deploys the repository's template and writes where METERING_DATA_DIR says", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "mrg-new"], t.env, tmpdir());
    assert.is(r.code, 0, r.stderr);
    const deploy = (await t.azCalls()).find((a) => a[0] === "deployment")!;
    assert.is(deploy[deploy.indexOf("--template-file") + 1], join(ROOT, "templates", "1-connect-customer.bicep"));
    assert.ok((await t.config()).customers[CUSTOMER_SUB]["mrg-new"], "recorded in the data directory");
    for (const line of r.stdout.trim().split("\n")) assert.ok([...line].length <= 80, line);
  } finally {
    await t.cleanup();
  }
});
connect("deploys the template into the MRG and records the customer", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "mrg-new", "--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    const deploy = (await t.azCalls()).find((a) => a[0] === "deployment")!;
    assert.equal(deploy.slice(0, 11), ["deployment", "group", "create", "--subscription", CUSTOMER_SUB, "--resource-group", "mrg-new", "--name", "metering-connect-customer", "--template-file", join(ROOT, "templates", "1-connect-customer.bicep")]);
    assert.equal(JSON.parse(deploy[deploy.indexOf("--parameters") + 1]), {
      issuer: { value: "https://idpabc.blob.core.windows.net/public" },
      subject: { value: `metering-submission-via-uami from ${PUBLISHER_TENANT}` },
      audience: { value: "api://AzureADTokenExchange" },
      uamiName: { value: "metering-submission-uami" },
    });
    const entry = (await t.config()).customers[CUSTOMER_SUB]["mrg-new"];
    assert.equal({ ...entry, connectedAt: undefined }, {
      uamiClientId: "88888888-8888-4888-8888-888888888888",
      tenantId: "44444444-4444-4444-8444-444444444444",
      subject: `metering-submission-via-uami from ${PUBLISHER_TENANT}`,
      audience: "api://AzureADTokenExchange",
      uamiName: "metering-submission-uami",
      billing: { resourceId: "77777777-7777-4777-8777-777777777777", resourceUri: NEW_APP_ID },
      planName: "gold",
      uamiId: `${MRG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami`,
      uamiPrincipalId: "99999999-9999-4999-8999-999999999999",
      connectedAt: undefined,
    });
    assert.ok((await t.config()).customers[CUSTOMER_SUB][MRG], "other customers kept");
    assert.equal(JSON.parse(r.stdout).planName, "gold");
  } finally {
    await t.cleanup();
  }
});
connect("an already connected customer is left alone without --force", async () => {
  const t = await setup(bashEraConfig());
  try {
    const before = await readFile(join(t.dir, "config.json"), "utf8");
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, MRG.toUpperCase()], t.env);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /is already connected \(use --force/);
    assert.equal(await t.azCalls(), []);
    assert.is(await readFile(join(t.dir, "config.json"), "utf8"), before);
  } finally {
    await t.cleanup();
  }
});
connect("a resource group no app manages fails with exit 1 and records nothing", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "plain-rg"], t.env);
    assert.is(r.code, 1);
    assert.match(r.stderr.trim().split("\n").pop()!, /^Cannot find the managed application of .*plain-rg: the resource group is not managed by one/);
    assert.not.ok((await t.config()).customers[CUSTOMER_SUB]["plain-rg"]);
  } finally {
    await t.cleanup();
  }
});
connect("without the ISV setup it says to run 0-isv-setup (exit 2)", async () => {
  const t = await setup({ publisher: bashEraConfig().publisher.idp && { ...bashEraConfig().publisher, idp: undefined }, customers: {} });
  try {
    const r = await run("1-connect-customer.mts", [CUSTOMER_SUB, "mrg-new"], t.env);
    assert.is(r.code, 2);
    assert.match(r.stderr, /publisher\.idp: missing \(run 0-isv-setup\)/);
  } finally {
    await t.cleanup();
  }
});
connect.run();

const emit = suite("2-emit-meter.mts");
emit("--dry-run --json prints the request without a token and touches nothing", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("2-emit-meter.mts", [CUSTOMER_SUB, MRG, "2", "dim1", "20.5", "--dry-run", "--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.is(out.request.url, "https://marketplaceapi.microsoft.com/api/usageEvent?api-version=2018-08-31");
    assert.is(out.request.headers.authorization, undefined);
    assert.equal({ ...out.request.body, effectiveStartTime: undefined }, {
      resourceId: "55555555-5555-4555-8555-555555555555",
      resourceUri: `/subscriptions/${CUSTOMER_SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app1`,
      planId: "silver", dimension: "dim1", quantity: 20.5, effectiveStartTime: undefined,
    });
    assert.match(out.request.body.effectiveStartTime, /^\d{4}-\d\d-\d\dT\d\d:00:00Z$/);
    assert.is(out.federation.subject, `metering-submission-via-uami from ${PUBLISHER_TENANT}`);
    await stat(join(t.dir, "audit.jsonl")).then(() => assert.unreachable("audit written"), () => {});
  } finally {
    await t.cleanup();
  }
});
emit("--dry-run honours METERING_API_BASE_URL", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("2-emit-meter.mts", [CUSTOMER_SUB, MRG, "0", "dim1", "1", "--dry-run"], { ...t.env, METERING_API_BASE_URL: "https://127.0.0.1:4443/" });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^POST https:\/\/127\.0\.0\.1:4443\/api\/usageEvent\?api-version=2018-08-31\n/);
    assert.not.match(r.stdout, /eyJ/);
  } finally {
    await t.cleanup();
  }
});
for (const [args, pattern] of [
  [["not-a-guid", MRG, "1", "d", "1"], /^Cannot use subscription "not-a-guid"/],
  [[CUSTOMER_SUB, "bad/rg", "1", "d", "1"], /^Cannot use managed resource group "bad\/rg"/],
  [[CUSTOMER_SUB, MRG, "24", "d", "1"], /^Cannot use hours-ago "24"/],
  [[CUSTOMER_SUB, MRG, "1", "", "1"], /^Cannot use dimension ""/],
  [[CUSTOMER_SUB, MRG, "1", "d", "0"], /^Cannot use quantity "0"/],
  [[CUSTOMER_SUB, MRG, "1", "d", "-1"], /^Cannot use quantity "-1": expected a decimal number greater than 0$/],
  [[CUSTOMER_SUB, MRG, "-1", "d", "1"], /^Cannot use hours-ago "-1": expected an integer from 0/],
  [[CUSTOMER_SUB, MRG, "1", "d", "1,5"], /^Cannot use quantity "1,5": use a dot: 1\.5$/],
  [[CUSTOMER_SUB, MRG, "1", "d", "1e308"], /^Cannot use quantity "1e308": above the ceiling of 1000000 per event \(a unit mix-up\?\); pass --max-quantity to allow more$/],
  [[CUSTOMER_SUB, MRG, "1", "d", "5", "--max-quantity", "2"], /^Cannot use quantity "5": above the ceiling of 2 per event/],
  [[CUSTOMER_SUB, MRG, "1", "d", "5", "--max-quantity", "-3"], /^Cannot use --max-quantity "-3": expected a decimal number greater than 0$/],
  [[CUSTOMER_SUB, MRG, "1", "d\u0007", "1"], /^Cannot use dimension "d\\u0007": it holds control characters/],
  [[CUSTOMER_SUB, MRG, "1", "d"], /^Cannot run: expected <subscription> <managed-resource-group> <hours-ago> <dimension> <quantity>, got 4/],
] as const) {
  emit(`bad input ${JSON.stringify(args)} exits 2 with one line and a pointer to --help`, async () => {
    const t = await setup(bashEraConfig());
    try {
      const r = await run("2-emit-meter.mts", [...args], t.env);
      assert.is(r.code, 2);
      const lines = r.stderr.split("\n");
      assert.match(lines[0], pattern);
      assert.equal(lines.slice(1), ["Run with --help for usage", ""], r.stderr);
      assert.is(r.stdout, "");
    } finally {
      await t.cleanup();
    }
  });
}
emit("--max-quantity raises the ceiling of the one event", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("2-emit-meter.mts", [CUSTOMER_SUB, MRG, "1", "dim1", "2500000", "--max-quantity", "5e6", "--dry-run", "--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    assert.is(JSON.parse(r.stdout).request.body.quantity, 2_500_000);
  } finally {
    await t.cleanup();
  }
});
emit("an unknown customer says to run 1-connect-customer (exit 2)", async () => {
  const t = await setup(bashEraConfig());
  try {
    const r = await run("2-emit-meter.mts", [CUSTOMER_SUB, "other-mrg", "1", "dim1", "1"], t.env);
    assert.is(r.code, 2);
    assert.is(r.stderr, `Cannot find customer ${CUSTOMER_SUB}/other-mrg in ${join(t.dir, "config.json")}: run 1-connect-customer ${CUSTOMER_SUB} other-mrg first\n`);
  } finally {
    await t.cleanup();
  }
});
emit("a missing config says to run 0-add-defaults (exit 2)", async () => {
  const t = await setup();
  try {
    const r = await run("2-emit-meter.mts", [CUSTOMER_SUB, MRG, "1", "dim1", "1"], t.env);
    assert.is(r.code, 2);
    assert.match(r.stderr, /does not exist \(run 0-add-defaults first/);
  } finally {
    await t.cleanup();
  }
});
emit("--resend --dry-run: an earlier event without an outcome would be sent again; expired or disconnected ones are Unknown", async () => {
  const t = await setup({ ...bashEraConfig() });
  try {
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000).toISOString().replace(".000Z", "Z");
    const old = new Date(Date.now() - 25 * 3_600_000).toISOString();
    const event = { resourceId: "55555555-5555-4555-8555-555555555555", resourceUri: "/x", planId: "p", dimension: "dim9", quantity: 3, effectiveStartTime: hour };
    const intent = {
      time: new Date().toISOString(), operation: "usageEvent.intent", id: "i1", customer: { subscriptionId: CUSTOMER_SUB, managedResourceGroup: MRG },
      request: { method: "POST", url: "u", headers: {}, body: event },
    };
    const answered = { ...event, dimension: "dim8" };
    const records = [
      intent,
      { ...intent, id: "answered", request: { ...intent.request, body: answered } },
      { ...intent, id: "answered", operation: "usageEvent", events: [{ key: `${answered.resourceId}|dim8|${hour}`, status: "Accepted", state: "accepted", billedQuantity: 3 }] },
      { ...intent, id: "expired", request: { ...intent.request, body: { ...event, dimension: "old", effectiveStartTime: old } } },
      { ...intent, id: "other", customer: { subscriptionId: CUSTOMER_SUB, managedResourceGroup: "other" }, request: { ...intent.request, body: { ...event, resourceId: "66666666-6666-4666-8666-666666666666" } } },
    ];
    await writeFile(join(t.dir, "audit.jsonl"), records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const r = await run("2-emit-meter.mts", ["--resend", "--dry-run", "--json"], t.env);
    assert.is(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout);
    assert.equal(plan.wouldSend.map((w: { event: { dimension: string }; resend: boolean }) => [w.event.dimension, w.resend]), [["dim9", true]]);
    assert.equal(plan.unknown.map((w: { event: { dimension: string }; status: string }) => [w.event.dimension, w.status]).sort(), [["dim9", "Unknown"], ["old", "Unknown"]]);
  } finally {
    await t.cleanup();
  }
});
emit.run();
