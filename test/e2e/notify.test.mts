// 2-emit-meter --notify against the sandbox, as a process: the webhook (the sandbox's sink) is
// posted to only when the run leaves something for a person, with the documented body; a
// webhook that cannot be reached is exit 1 and leaves billing as it was; bad options refused.
import { createServer } from "node:net";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { hourBack, hoursAgoOf, isoHour } from "../helpers/hours.mts";
import { loadLedger } from "../../lib/metering/submission.mts";

const { sb, env, dataDir, auditPath, customers, events } = await startFleet({ customers: 3, dimensions: 3 });
const hook = (name: string) => `${sb.endpoints.admin}/webhooks/${name}`;
type Received = { body: Record<string, unknown> & { counts: Record<string, number>; failed: Array<Record<string, unknown>>; expiring: Array<Record<string, unknown>> }; contentType: string };
const received = (name: string) => admin<Received[]>(sb, "GET", `/webhooks/${name}`);
const file = async (text: string) => {
  const path = join(dataDir, "..", `${Date.now()}-${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(path, text);
  return path;
};
const HEADER = "subscription,managed-resource-group,dimension,quantity,effective-start-time";
const [c0, c1, c2] = customers;

const N = suite("2-emit-meter --notify");

N("every event accepted: nothing needs a person, the webhook is not called, exit 0", async () => {
  const text = [HEADER, `${c0.subscriptionId},${c0.managedResourceGroup},${c0.dimensions[0]},2,${isoHour(hourBack(2))}`].join("\n");
  const r = await runScript("2-emit-meter.mts", ["--file", await file(text), "--notify", hook("quiet")], { env });
  assert.is(r.code, 0, describe(r));
  assert.equal(await received("quiet"), []);
  assert.not.match(r.stderr, /needs a person/);
});

N("a refused event: exit 1, one POST with the documented body naming it; the accepted one is billed", async () => {
  const text = [
    HEADER,
    `${c1.subscriptionId},${c1.managedResourceGroup},${c1.dimensions[0]},3,${isoHour(hourBack(3))}`,
    `${c1.subscriptionId},${c1.managedResourceGroup},cpu-hourz,1,${isoHour(hourBack(3))}`,
  ].join("\n");
  const r = await runScript("2-emit-meter.mts", ["--file", await file(text), "--notify", hook("refused")], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Marketplace metering needs a person .*1 event\(s\) refused/);
  assert.match(r.stderr, /Notified the webhook at /, describe(r));
  const posts = await received("refused");
  assert.is(posts.length, 1);
  const [{ body, contentType }] = posts;
  assert.match(contentType, /^application\/json/);
  assert.is(body.type, "metering.attention");
  assert.is(body.version, 1);
  assert.equal(body.counts, { failed: 1, unknown: 0, expiring: 0, skipped: 0 });
  assert.is(body.failed.length, 1);
  assert.is(body.failed[0].dimension, "cpu-hourz");
  assert.is(body.failed[0].status, "InvalidDimension");
  assert.is(body.failed[0].subscriptionId, c1.subscriptionId);
  assert.is(body.failed[0].leavesWindowAt, isoHour(hourBack(3) + 24 * 3_600_000));
  assert.ok(!Number.isNaN(Date.parse(String(body.time))));
  assert.is((await events()).filter((e) => e.resourceId === c1.resourceUsageId).length, 1, "the good event is billed");
});

N("an event left open with its hour about to leave the window: reported as expiring", async () => {
  const slot = hourBack(22);
  await admin(sb, "POST", "/faults", { service: "metering", route: "/api/usageEvent", method: "POST", kind: "drop", times: -1 });
  try {
    const r = await runScript("2-emit-meter.mts", [c2.subscriptionId, c2.managedResourceGroup, await hoursAgoOf(slot), c2.dimensions[1], "5", "--notify", hook("open"), "--warn-before", "3h"], { env });
    assert.is(r.code, 1, describe(r));
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  const [post] = await received("open");
  assert.ok(post, "posted");
  assert.equal(post.body.counts, { failed: 0, unknown: 0, expiring: 1, skipped: 0 });
  assert.is(post.body.expiring[0].effectiveStartTime, isoHour(slot));
  const { ledger } = await loadLedger({ auditPath });
  assert.is(ledger.unresolved().length, 1);
});

N("a webhook that cannot be reached: the events are billed and recorded, the run says so in one line, exit 1", async () => {
  // A port nobody listens on: the connection is refused (a real ECONNREFUSED, after the retries).
  const port = await new Promise<number>((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const p = (server.address() as { port: number }).port;
      server.close(() => resolve(p));
    });
  });
  const text = [HEADER, `${c0.subscriptionId},${c0.managedResourceGroup},nope-dimension,1,${isoHour(hourBack(4))}`, `${c0.subscriptionId},${c0.managedResourceGroup},${c0.dimensions[2]},7,${isoHour(hourBack(4))}`].join("\n");
  const r = await runScript("2-emit-meter.mts", ["--file", await file(text), "--notify", `http://127.0.0.1:${port}/hook?sig=secret-value`], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Cannot notify: cannot reach the webhook at 127\.0\.0\.1:\d+: ECONNREFUSED; billing is not affected/, describe(r));
  assert.not.match(r.stderr + r.stdout, /secret-value/, "the webhook's query is never printed");
  assert.is((await events()).filter((e) => e.resourceId === c0.resourceUsageId && e.dimension === c0.dimensions[2]).length, 1);
});

N("doctor --usage: the ledger's refused events still in the window (exit 1, nothing sent); an empty ledger is exit 0", async () => {
  await admin(sb, "DELETE", "/requests");
  const r = await runScript("doctor.mts", ["--usage", "--json"], { env });
  assert.is(r.code, 1, describe(r));
  const report = JSON.parse(r.stdout);
  assert.is(report.ok, false);
  assert.equal(report.counts, { failed: 2, unknown: 0, expiring: 0, skipped: 0 }, "the open event was settled by the next run's resend");
  assert.equal(report.failed.map((i: { dimension: string }) => i.dimension).sort(), ["cpu-hourz", "nope-dimension"]);
  const { admin: _self, ...services } = await admin<Record<string, unknown>>(sb, "GET", "/requests");
  assert.equal(services, {}, "no call to any service");
  const table = await runScript("doctor.mts", ["--usage", "--warn-before", "90m"], { env });
  assert.is(table.code, 1, describe(table));
  assert.match(table.stdout, /^NEEDS\s+CUSTOMER\s+DIMENSION/m);
  assert.match(table.stderr, /2 refused, 0 of unknown fate, 0 open and leaving the window within 90m/);
  const empty = await runScript("doctor.mts", ["--usage"], { env: { ...env, METERING_DATA_DIR: await mkdtemp(join(tmpdir(), "metering-empty-")) } });
  assert.is(empty.code, 0, describe(empty));
  assert.match(empty.stdout, /Nothing needs a person/);
});

N("config.json notify.url is the webhook without --notify; a bad one is exit 2 before anything is sent", async () => {
  const configPath = join(dataDir, "config.json");
  const saved = await readFile(configPath, "utf8");
  try {
    await writeFile(configPath, JSON.stringify({ ...JSON.parse(saved), notify: { url: hook("configured") } }));
    const r = await runScript("2-emit-meter.mts", [c2.subscriptionId, c2.managedResourceGroup, await hoursAgoOf(hourBack(5)), "cpu-hourz", "1"], { env });
    assert.is(r.code, 1, describe(r));
    assert.equal((await received("configured")).map((p) => p.body.counts), [{ failed: 1, unknown: 0, expiring: 0, skipped: 0 }]);
    await writeFile(configPath, JSON.stringify({ ...JSON.parse(saved), notify: { url: "mailto:ops@example.com" } }));
    await admin(sb, "DELETE", "/requests");
    const bad = await runScript("2-emit-meter.mts", [c2.subscriptionId, c2.managedResourceGroup, "1", c2.dimensions[2], "1"], { env });
    assert.is(bad.code, 2, describe(bad));
    assert.match(bad.stderr, /Cannot use config\.json notify\.url "mailto:ops@example\.com": a webhook is an http\(s\) URL/);
    const { admin: _self, ...services } = await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
    assert.is(services.metering, undefined, "nothing sent");
  } finally {
    await writeFile(configPath, saved);
  }
});

N("bad --notify or --warn-before: one line, exit 2, nothing sent", async () => {
  for (const [args, re] of [
    [["--notify", "ftp://example.com/x"], /Cannot use --notify "ftp:\/\/example.com\/x": a webhook is an http\(s\) URL/],
    [["--notify", "not a url"], /Cannot use --notify "not a url": not a URL/],
    [["--warn-before", "3 hours"], /Cannot use --warn-before "3 hours": expected hours and minutes such as 3h, 90m or 1h30m/],
    [["--warn-before", "25h"], /at most 24h/],
  ] as const) {
    const r = await runScript("2-emit-meter.mts", [c0.subscriptionId, c0.managedResourceGroup, "1", c0.dimensions[0], "1", ...args], { env });
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr, re);
  }
});

N.after(async () => {
  await sb.stop();
});
N.run();
