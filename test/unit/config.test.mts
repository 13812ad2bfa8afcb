import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hostname } from "node:os";
import {
  configProblems, customerProblems, getCustomer, loadConfig, parseConfig, repairHints, saveConfig, updateConfig,
  withCustomer, withPublisher, type CustomerConfig,
} from "../../lib/state/config.mts";
import { findCustomer } from "../../lib/state/customers.mts";
import { ConfigInvalidError, ConfigMissingError, CustomerNotConnectedError } from "../../lib/core/errors.mts";
import { bashEraConfig, CUSTOMER_SUB, tempDir } from "./_support.mts";

const problems = suite("configProblems()");

problems("accepts a bash-era config at every stage", () => {
  for (const stage of ["any", "defaults", "idp"] as const) assert.equal(configProblems(bashEraConfig(), { stage }), []);
});

problems("names every missing defaults key at once", () => {
  const list = configProblems({ publisher: {} }, { stage: "defaults" });
  assert.equal(list, [
    "publisher.aadTenantId: missing",
    "publisher.subscriptionId: missing",
    "publisher.resourceGroup: missing",
    "publisher.location: missing",
  ]);
});

problems("reports a missing publisher as one problem", () => {
  assert.equal(configProblems({}, { stage: "defaults" }), ["publisher: missing"]);
});

problems("names invalid values with what was found", () => {
  const doc = bashEraConfig();
  doc.publisher.aadTenantId = "not-a-guid";
  doc.publisher.idp.issuer = "https://idpabc.blob.core.windows.net/public/";
  delete doc.publisher.idp.keyJson.n;
  const list = configProblems(doc, { stage: "idp" });
  assert.equal(list.length, 3);
  assert.match(list[0], /^publisher\.aadTenantId: expected a tenant id \(GUID\) or a verified domain such as contoso\.com, got "not-a-guid"$/);
  assert.match(list[1], /^publisher\.idp\.issuer: expected an https URL without trailing slash/);
  assert.is(list[2], "publisher.idp.keyJson.n: missing");
});

problems("a verified domain names the tenant as well as its GUID (the bash tool's sample has one)", () => {
  const doc = bashEraConfig();
  doc.publisher.aadTenantId = "geuer-pollmann.de";
  assert.equal(configProblems(doc, { stage: "idp" }), []);
  doc.publisher.aadTenantId = "contoso.onmicrosoft.com";
  assert.equal(configProblems(doc, { stage: "idp" }), []);
  for (const bad of ["localhost", "contoso..com", "-x.com", "contoso.com/"]) {
    doc.publisher.aadTenantId = bad;
    assert.equal(configProblems(doc, { stage: "idp" }).length, 1, bad);
  }
});

problems("every hint names the script that writes the key at fault", () => {
  const hint = (doc: unknown, stage: "defaults" | "idp") => {
    try {
      parseConfig(JSON.stringify(doc), { path: "/data/config.json", stage });
      return "";
    } catch (e) {
      return (e as Error).message.replace(/^.*\(([^()]*)\)$/, "$1");
    }
  };
  const doc = bashEraConfig();
  doc.publisher.aadTenantId = "x";
  assert.is(hint(doc, "idp"), "run 0-add-defaults", "a publisher default is 0-add-defaults' even when 0-isv-setup asks");
  const noIdp = bashEraConfig();
  delete noIdp.publisher.idp.keyUri;
  assert.is(hint(noIdp, "idp"), "run 0-isv-setup");
  const both = bashEraConfig();
  both.publisher.resourceGroup = "";
  delete both.publisher.idp.keyUri;
  assert.is(hint(both, "idp"), "run 0-add-defaults; run 0-isv-setup");
  assert.equal(repairHints(["customers.s.m.uamiClientId: missing"]), ["run 1-connect-customer --force for that customer"]);
  assert.equal(repairHints(["customers: expected an object, got []"]), ["fix the file or move it away"]);
});

problems("'any' only checks the overall shape", () => {
  assert.equal(configProblems({ publisher: {} }, { stage: "any" }), []);
  assert.equal(configProblems({ customers: [] }, { stage: "any" }), ["customers: expected an object, got []"]);
  assert.equal(configProblems("x", { stage: "any" }), ['(top level): expected a JSON object, got "x"']);
});

problems("idp stage needs publisher.idp", () => {
  const doc = bashEraConfig();
  delete doc.publisher.idp;
  assert.equal(configProblems(doc, { stage: "idp" }), ["publisher.idp: missing"]);
});

problems.run();

const customer = suite("customerProblems()");

customer("accepts a bash-era customer entry", () => {
  const entry = bashEraConfig().customers[CUSTOMER_SUB]["mrg-app1-20240101"];
  assert.equal(customerProblems(entry, "c"), []);
});

customer("names every missing or invalid key", () => {
  const list = customerProblems({ uamiClientId: "x", billing: { resourceUri: "nope" } }, "c");
  assert.equal(list, [
    'c.uamiClientId: expected a GUID, got "x"',
    "c.tenantId: missing",
    "c.subject: missing",
    "c.audience: missing",
    "c.uamiName: missing",
    "c.planName: missing",
    "c.billing.resourceId: missing",
    'c.billing.resourceUri: expected a managed application id /subscriptions/…, got "nope"',
  ]);
});

customer.run();

const parse = suite("parseConfig()");

parse("throws one ConfigInvalidError naming the file and every problem", () => {
  try {
    parseConfig(JSON.stringify({ publisher: { location: "x" } }), { path: "/data/config.json", stage: "defaults" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigInvalidError);
    const e = error as ConfigInvalidError;
    assert.is(e.code, "ERR_CONFIG_INVALID");
    assert.is(e.path, "/data/config.json");
    assert.is(e.problems.length, 3);
    assert.match(e.message, /^Cannot use config \/data\/config\.json: publisher\.aadTenantId: missing; publisher\.subscriptionId: missing; publisher\.resourceGroup: missing \(run 0-add-defaults\)$/);
  }
});

parse("reports broken JSON", () => {
  try {
    parseConfig("{", { path: "/c.json" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigInvalidError);
    assert.match((error as Error).message, /not valid JSON/);
  }
});

parse("fills in missing publisher and customers objects", () => {
  assert.equal(parseConfig("{}", { path: "/c.json" }), { publisher: {}, customers: {} });
});

parse.run();

const load = suite("loadConfig()");

load("throws ConfigMissingError for a missing file", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await loadConfig({ path: join(dir, "config.json") });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigMissingError);
    assert.match((error as Error).message, /does not exist \(run 0-add-defaults first/);
  } finally {
    await cleanup();
  }
});

load("returns an empty config for a missing file when allowed", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    assert.equal(await loadConfig({ path: join(dir, "config.json"), allowMissing: true }), { publisher: {}, customers: {} });
  } finally {
    await cleanup();
  }
});

load("reads a bash-era file as is, unknown keys included", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify(bashEraConfig(), null, 2));
    const config = await loadConfig({ path, stage: "idp" });
    assert.equal(config, bashEraConfig());
    assert.equal(config.publisher.addedLater, { keep: true });
  } finally {
    await cleanup();
  }
});

load.run();

const save = suite("saveConfig()");

save("writes mode 0600 and leaves no temp file", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "sub", "config.json");
    const result = await saveConfig({ path, config: bashEraConfig() as any });
    assert.is(result.changed, true);
    assert.is((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await readdir(join(dir, "sub")), ["config.json"]);
    assert.equal(JSON.parse(await readFile(path, "utf8")), bashEraConfig());
    assert.ok((await readFile(path, "utf8")).endsWith("}\n"));
  } finally {
    await cleanup();
  }
});

save("does not rewrite a file that already holds the same data", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    // jq-style formatting differs from ours; equal data must still count as unchanged.
    await writeFile(path, JSON.stringify(bashEraConfig()));
    const before = await stat(path);
    const result = await saveConfig({ path, config: bashEraConfig() as any });
    assert.is(result.changed, false);
    assert.is((await stat(path)).ino, before.ino);
  } finally {
    await cleanup();
  }
});

save("replaces the file by rename (a reader never sees a half-written file)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    await writeFile(path, "{}");
    const before = await stat(path);
    await saveConfig({ path, config: bashEraConfig() as any });
    assert.is.not((await stat(path)).ino, before.ino);
  } finally {
    await cleanup();
  }
});

save("removes the temp files of writes killed long ago, and keeps a fresh one (another writer's)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    const stale = join(dir, ".config.json.11111111-1111-4111-8111-111111111111.tmp");
    const fresh = join(dir, ".config.json.22222222-2222-4222-8222-222222222222.tmp");
    await writeFile(stale, "{\"half");
    await writeFile(fresh, "{");
    const old = new Date(Date.now() - 5 * 60_000);
    await utimes(stale, old, old);
    await saveConfig({ path, config: bashEraConfig() as any });
    assert.equal((await readdir(dir)).sort(), [".config.json.22222222-2222-4222-8222-222222222222.tmp", "config.json"]);
  } finally {
    await cleanup();
  }
});

save.run();

const update = suite("updateConfig()");

update("concurrent updates of different customers both survive", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    const entry = bashEraConfig().customers[CUSTOMER_SUB]["mrg-app1-20240101"] as CustomerConfig;
    await Promise.all(["mrg-a", "mrg-b", "mrg-c"].map((mrg) =>
      updateConfig({
        path,
        update: async (c) => {
          await new Promise((r) => setTimeout(r, 20));
          return withCustomer(c, { subscriptionId: CUSTOMER_SUB, managedResourceGroup: mrg, customer: entry });
        },
      })
    ));
    const config = await loadConfig({ path });
    assert.equal(Object.keys(config.customers[CUSTOMER_SUB]).sort(), ["mrg-a", "mrg-b", "mrg-c"]);
    assert.equal((await readdir(dir)).sort(), ["config.json"]);
  } finally {
    await cleanup();
  }
});

update("reports unchanged when update returns the same data", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify(bashEraConfig()));
    const { changed } = await updateConfig({ path, update: (c) => withPublisher(c, { location: "westeurope" }) });
    assert.is(changed, false);
  } finally {
    await cleanup();
  }
});

update("a lock left by a process that died is taken over at once (the run lock's rules)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "config.json");
    await writeFile(`${path}.lock`, JSON.stringify({ pid: 999_999_999, host: hostname(), token: "t", startedAt: new Date().toISOString() }));
    // Before, only its age (60 s) counted: this update waited 10 s and failed as "locked".
    await updateConfig({ path, update: (c) => withPublisher(c, { location: "westeurope" }) });
    assert.equal((await readdir(dir)).sort(), ["config.json"]);
  } finally {
    await cleanup();
  }
});

update.run();

const customers = suite("findCustomer() / getCustomer()");

customers("finds a customer ignoring case, returning the file's keys", () => {
  const found = findCustomer(bashEraConfig() as any, { subscriptionId: CUSTOMER_SUB.toUpperCase(), managedResourceGroup: "MRG-APP1-20240101" });
  assert.is(found?.subscriptionId, CUSTOMER_SUB);
  assert.is(found?.managedResourceGroup, "mrg-app1-20240101");
});

customers("getCustomer says to run 1-connect-customer for an unknown customer", () => {
  try {
    getCustomer(bashEraConfig() as any, { subscriptionId: CUSTOMER_SUB, managedResourceGroup: "other", path: "/c.json" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, CustomerNotConnectedError);
    assert.is((error as CustomerNotConnectedError).code, "ERR_CUSTOMER_NOT_CONNECTED");
    assert.match((error as Error).message, `run 1-connect-customer ${CUSTOMER_SUB} other first`);
  }
});

customers("getCustomer rejects an incomplete entry with every problem", () => {
  const doc = bashEraConfig();
  delete doc.customers[CUSTOMER_SUB]["mrg-app1-20240101"].planName;
  delete doc.customers[CUSTOMER_SUB]["mrg-app1-20240101"].tenantId;
  try {
    getCustomer(doc as any, { subscriptionId: CUSTOMER_SUB, managedResourceGroup: "mrg-app1-20240101", path: "/c.json" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigInvalidError);
    assert.equal((error as ConfigInvalidError).problems, [
      `customers.${CUSTOMER_SUB}.mrg-app1-20240101.tenantId: missing`,
      `customers.${CUSTOMER_SUB}.mrg-app1-20240101.planName: missing`,
    ]);
  }
});

customers("withCustomer replaces an entry under the existing keys", () => {
  const config = bashEraConfig() as any;
  const entry = { ...config.customers[CUSTOMER_SUB]["mrg-app1-20240101"], planName: "gold" };
  const next = withCustomer(config, { subscriptionId: CUSTOMER_SUB.toUpperCase(), managedResourceGroup: "MRG-APP1-20240101", customer: entry });
  assert.equal(Object.keys(next.customers), [CUSTOMER_SUB]);
  assert.is(next.customers[CUSTOMER_SUB]["mrg-app1-20240101"].planName, "gold");
  assert.is(config.customers[CUSTOMER_SUB]["mrg-app1-20240101"].planName, "silver", "input not mutated");
});

customers.run();
