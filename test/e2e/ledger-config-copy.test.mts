// The copy of config.json beside a blob ledger (what a job's replicas read) follows the
// publisher's own config.json: once `0-ledger push-config` made it, 1-connect-customer and
// 1-disconnect-customer rewrite it, so the next replica bills a customer connected a minute ago
// and no longer one disconnected. Without a pushed copy none is written. Processes against the
// sandbox with Azurite; the copy is read back from the container, and a runner with no data
// directory of its own bills the new customer (the metering emulator's events).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox({ azurite: true });
const env = await sandboxEnv(sb);
const [first, second] = sb.world.customers;
const whoOf = (c: typeof first) => [c.subscriptionId, c.managedResourceGroup];
const configPath = join(env.METERING_DATA_DIR, "config.json");
const store = (prefix: string) => blobLedgerStore({ blobEndpoint: `${sb.endpoints.blob}/`, container: "ledger", prefix, credential: isvCredential(sb) });
const ledgerEnv = (prefix: string) => ({ ...env, METERING_LEDGER: `blob:${sb.endpoints.blob}/ledger/${prefix}` });
const connected = (text: string | undefined, c: typeof first) => text !== undefined && JSON.parse(text).customers[c.subscriptionId]?.[c.managedResourceGroup] !== undefined;

const C = suite("the ledger's copy of config.json");

C.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
  await runOk("1-connect-customer.mts", whoOf(first), env);
});

C("without a pushed copy, connecting a customer writes none", async () => {
  const r = await runScript("1-connect-customer.mts", whoOf(second), { env: ledgerEnv("none/") });
  assert.is(r.code, 0, describe(r));
  assert.is(await store("none/").sharedConfig!.get(), undefined);
  assert.not.match(r.stderr, /copy of config\.json/);
  await runOk("1-disconnect-customer.mts", whoOf(second), ledgerEnv("none/"));
});

C("pushed once, the copy follows connect and disconnect; a runner without a data directory bills the newly connected customer", async () => {
  const e = ledgerEnv("job/");
  await runOk("0-ledger.mts", ["push-config"], e);
  const copy = store("job/").sharedConfig!;
  assert.is(await copy.get(), await readFile(configPath, "utf8"));
  assert.not.ok(connected(await copy.get(), second));

  const r = await runScript("1-connect-customer.mts", whoOf(second), { env: e });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stderr, /copy of config\.json beside the ledger/);
  assert.is(await copy.get(), await readFile(configPath, "utf8"), "the copy is the saved file");
  assert.ok(connected(await copy.get(), second));

  // A replica: an empty data directory, the ledger named by METERING_LEDGER.
  const replicaDir = await mkdtemp(join(tmpdir(), "metering-replica-"));
  try {
    const before = (await admin<unknown[]>(sb, "GET", "/metering/events")).length;
    const run = await runScript("2-emit-meter.mts", [...whoOf(second), "1", second.dimensions[0], "4", "--json"], { env: { ...e, METERING_DATA_DIR: replicaDir } });
    assert.is(run.code, 0, describe(run));
    const events = (await admin<Array<{ resourceId: string; dimension: string; quantity: number }>>(sb, "GET", "/metering/events")).slice(before);
    assert.equal(events.map((x) => [x.resourceId, x.dimension, x.quantity]), [[second.resourceUsageId, second.dimensions[0], 4]]);
  } finally {
    await rm(replicaDir, { recursive: true, force: true });
  }

  const gone = await runScript("1-disconnect-customer.mts", whoOf(second), { env: e });
  assert.is(gone.code, 0, describe(gone));
  assert.not.ok(connected(await copy.get(), second), "a disconnected customer leaves the copy");
  assert.ok(connected(await copy.get(), first));
  assert.is(await copy.get(), await readFile(configPath, "utf8"));
});

C.after(() => sb.stop());
C.run();
