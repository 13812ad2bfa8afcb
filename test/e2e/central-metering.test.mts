// 2-emit-meter --as publisher-app: a fleet of 400 customers billed centrally with the publisher
// app's token, one Key Vault signature and one token exchange for every customer (counted by the
// sandbox), the same batches of 25, the same ledger and exactly-once rules; the UAMI path beside it.
// The first FULL customers are connected in full (UAMI deployed); the rest billing-only, as a
// central service connects them (1-connect-customer --billing-only: billing ids read from ARM,
// nothing deployed). Deploying 400 UAMIs would take the sandbox 3 to 4 minutes on the shared
// 2-core machine (measured: 400 in full 242 s, 120 in full 158 s at a load average of 10 to 18),
// where the billing ids of 400 take seconds: this whole file ran in 37 to 51 s at load averages of 4 to 8 (83 s at 14).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { fleetCsv, fleetCustomers, fleetSeed, setupFleet } from "../helpers/fleet.mts";
import { runOk } from "../helpers/workflow.mts";
import { loadWorldSeed } from "../../sandbox/main.mts";

const CUSTOMERS = 400;
const FULL = 2;
const base = await loadWorldSeed();
const seed = fleetSeed(base, { customers: CUSTOMERS, dimensions: 3 });
const appId = base.offers[0].technicalConfiguration!.appId;
seed.offers[0].technicalConfiguration = { tenantId: seed.isv.tenantId, appId };
const sb = await startTestSandbox({ seed });
const env = await sandboxEnv(sb);
const customers = fleetCustomers(seed);
type Token = { tenantId: string; appid: string; grant: string };
const tokens = () => admin<Token[]>(sb, "GET", "/tokens");
const counters = () => admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
const signatures = async () => Object.entries((await counters()).keyvault ?? {}).filter(([r]) => r.endsWith("/sign")).reduce((n, [, c]) => n + c, 0);
const accepted = () => admin<Array<{ resourceId: string; dimension: string }>>(sb, "GET", "/metering/events");

const C = suite("central metering");

C.before(async () => {
  await setupFleet({ env, seed, fullConnections: FULL, concurrency: 16 });
  await runOk("0-publisher-app.mts", ["--app-id", appId], env);
});

C("bills every customer with one signature and one exchange of the publisher app", async () => {
  const { readFile } = await import("node:fs/promises");
  const entries = Object.values(JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8")).customers as Record<string, Record<string, { billingOnly?: boolean }>>).flatMap((g) => Object.values(g));
  assert.equal([entries.length, entries.filter((e) => e.billingOnly === true).length], [CUSTOMERS, CUSTOMERS - FULL]);
  const { csv, rows } = fleetCsv(customers, { hoursAgo: 1, perCustomer: 2 });
  const file = join(env.METERING_DATA_DIR, "..", `central-${Date.now()}.csv`);
  await writeFile(file, csv);
  const before = (await tokens()).length;
  await admin(sb, "DELETE", "/requests");
  const r = await runScript("2-emit-meter.mts", ["--file", file, "--as", "publisher-app", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const issued = (await tokens()).slice(before).filter((t) => t.grant === "client_assertion");
  assert.equal(issued.map((t) => [t.tenantId, t.appid]), [[seed.isv.tenantId, appId]], "one exchange, the publisher app's, in the ISV tenant");
  assert.is(await signatures(), 1, "one Key Vault signature");
  assert.is((await counters()).metering?.["POST /api/batchUsageEvent"], CUSTOMERS, "one batch per customer");
  assert.is((await accepted()).length, rows);
  // Run again: the ledger says every row is accepted; nothing is sent, nothing signed.
  await admin(sb, "DELETE", "/requests");
  const again = await runScript("2-emit-meter.mts", ["--file", file, "--as", "publisher-app"], { env });
  assert.is(again.code, 0, describe(again));
  assert.is((await counters()).metering, undefined);
  assert.is(await signatures(), 0);
});

C("publisher.meterAs makes it the default; --as uami still signs in as each customer's UAMI", async () => {
  const path = join(env.METERING_DATA_DIR, "config.json");
  const { readFile } = await import("node:fs/promises");
  const cfg = JSON.parse(await readFile(path, "utf8"));
  await writeFile(path, JSON.stringify({ ...cfg, publisher: { ...cfg.publisher, meterAs: "publisher-app" } }, null, 2));
  const [a, b] = customers;
  const before = (await tokens()).length;
  const central = await runScript("2-emit-meter.mts", [a.subscriptionId, a.managedResourceGroup, "2", a.dimensions[2], "1"], { env });
  assert.is(central.code, 0, describe(central));
  const uami = await runScript("2-emit-meter.mts", [b.subscriptionId, b.managedResourceGroup, "2", b.dimensions[2], "1", "--as", "uami"], { env });
  assert.is(uami.code, 0, describe(uami));
  const issued = (await tokens()).slice(before).filter((t) => t.grant === "client_assertion");
  assert.is(issued.length, 2);
  assert.is(issued[0].appid, appId);
  assert.is(issued[1].tenantId, seed.customers[1].tenantId, "the UAMI's token, in the customer's tenant");
  const bad = await runScript("2-emit-meter.mts", [a.subscriptionId, a.managedResourceGroup, "3", a.dimensions[2], "1", "--as", "someone"], { env });
  assert.is(bad.code, 2, describe(bad));
});

C("a refused exchange of the publisher app names the app (app id, tenant) and its fix, not a UAMI; nothing is sent", async () => {
  const { readFile } = await import("node:fs/promises");
  const path = join(env.METERING_DATA_DIR, "config.json");
  const good = await readFile(path, "utf8");
  const cfg = JSON.parse(good);
  // A subject that differs from the app's credential only in case: Entra refuses it (AADSTS7002138), no retry helps.
  cfg.publisher.app.subject = cfg.publisher.app.subject.toUpperCase();
  await writeFile(path, JSON.stringify(cfg, null, 2));
  try {
    await admin(sb, "DELETE", "/requests");
    const [a] = customers;
    const r = await runScript("2-emit-meter.mts", [a.subscriptionId, a.managedResourceGroup, "7", a.dimensions[0], "1", "--as", "publisher-app"], { env });
    assert.is(r.code, 1, describe(r));
    const text = r.stdout + r.stderr;
    assert.match(text, new RegExp(`the publisher app ${appId} in tenant ${seed.isv.tenantId}: AADSTS7002138: .*run 0-publisher-app --app-id ${appId} again`));
    assert.not.match(text, /UAMI|1-connect-customer/);
    assert.is((await counters()).metering, undefined, "nothing sent");
  } finally {
    await writeFile(path, good);
  }
});

C("without publisher.app, --as publisher-app is a usage error and sends nothing", async () => {
  const { mkdtemp, readFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const dir = await mkdtemp(join(tmpdir(), "metering-noapp-"));
  const cfg = JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"));
  delete cfg.publisher.app;
  delete cfg.publisher.meterAs;
  await writeFile(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  await admin(sb, "DELETE", "/requests");
  const [a] = customers;
  const r = await runScript("2-emit-meter.mts", [a.subscriptionId, a.managedResourceGroup, "1", a.dimensions[0], "1", "--as", "publisher-app"], { env: { ...env, METERING_DATA_DIR: dir } });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /run 0-publisher-app first/);
  assert.is((await counters()).metering, undefined);
});

C("1-connect-customer --billing-only: billing ids and plan, nothing deployed; billed as the publisher app only", async () => {
  const c = seed.customers[CUSTOMERS - 1];
  const envB = await sandboxEnv(sb);
  await runOk("0-add-defaults.mts", [], envB);
  await runOk("0-isv-setup.mts", [], envB);
  await runOk("0-publisher-app.mts", ["--app-id", appId], envB);
  const grant = await runScript("1-connect-customer.mts", [c.subscriptionId, c.managedResourceGroup, "--billing-only", "--grant", "Reader"], { env: envB });
  assert.is(grant.code, 2, describe(grant));
  const mrg = `/subscriptions/${c.subscriptionId}/resourceGroups/${c.managedResourceGroup}`;
  const identitiesBefore = sb.state.resourcesUnder(mrg).length;
  await admin(sb, "DELETE", "/requests");
  const r = await runScript("1-connect-customer.mts", [c.subscriptionId, c.managedResourceGroup, "--billing-only", "--json"], { env: envB });
  assert.is(r.code, 0, describe(r));
  const entry = JSON.parse(r.stdout);
  assert.equal([entry.billingOnly, entry.billing.resourceId, entry.planName, entry.uamiClientId], [true, c.app.resourceUsageId, "fleet", undefined]);
  assert.is(sb.state.resourcesUnder(mrg).length, identitiesBefore, "nothing deployed into the MRG");
  assert.not.ok(Object.keys((await counters()).arm ?? {}).some((route) => route.startsWith("PUT")), "no ARM write");
  const dim = seed.offers[0].plans[0].dimensions[0];
  const central = await runScript("2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, "5", dim, "2", "--as", "publisher-app"], { env: envB });
  assert.is(central.code, 0, describe(central));
  const asUami = await runScript("2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, "6", dim, "2"], { env: envB });
  assert.is(asUami.code, 1, describe(asUami));
  assert.match(asUami.stderr + asUami.stdout, /connected for billing only/);
  const doctor = await runScript("doctor.mts", [c.subscriptionId, c.managedResourceGroup, "--json"], { env: envB });
  const checks = JSON.parse(doctor.stdout).checks as Array<{ id: string; status: string }>;
  assert.equal(checks.filter((x) => ["customer-config", "uami", "fic", "token", "managed-app"].includes(x.id)).map((x) => [x.id, x.status]),
    [["customer-config", "ok"], ["uami", "skip"], ["fic", "skip"], ["token", "skip"], ["managed-app", "ok"]], doctor.stdout);
});

C.after(() => sb.stop());
C.run();
