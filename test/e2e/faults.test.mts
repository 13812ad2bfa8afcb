// Each transient fault alone, injected by the sandbox, on each call 2-emit-meter makes: the
// single usageEvent call, the batchUsageEvent call, Entra's token exchange and the Key Vault
// signature. Every run must end with the event(s) accepted exactly once with the intended
// quantity, the faulted call retried, and the audit log agreeing. Also: Entra's propagation
// error for a fresh connection is retried until the credential works.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { hourBack, hoursAgoOf, isoHour } from "../helpers/hours.mts";
import { loadLedger } from "../../lib/metering/submission.mts";

// The third customer is connected by a test, fresh. One attempt may take 2 s before it counts
// as a timeout (the default is 30 s): a metering call takes 10-50 ms here and up to 0.4 s at a
// load of 12 on 2 cores, so a busy machine does not turn answers into timeouts (one that did
// would only be retried). The delay fault holds its request five times as long, so even a
// timer that fires late times out before the answer comes.
const TRY_TIMEOUT_MS = 2_000;
const { sb, env, dataDir, auditPath, customers, events, counters } = await startFleet({
  customers: 3, dimensions: 6, connect: 2, env: { METERING_HTTP_TRY_TIMEOUT_MS: String(TRY_TIMEOUT_MS) },
});
const [c1, c2, fresh] = customers;

const FAULTS: Array<{ name: string; spec: Record<string, unknown> }> = [
  { name: "429 with Retry-After", spec: { kind: "status", status: 429, retryAfter: 1 } },
  { name: "500", spec: { kind: "status", status: 500 } },
  { name: "503", spec: { kind: "status", status: 503 } },
  { name: "connection reset", spec: { kind: "reset" } },
  { name: "delay past the timeout", spec: { kind: "delay", delayMs: 5 * TRY_TIMEOUT_MS } },
  { name: "accepted, then the connection dropped", spec: { kind: "drop" } },
];
const TARGETS: Array<{ name: string; service: string; route: string; batch: boolean }> = [
  { name: "single usageEvent", service: "metering", route: "/api/usageEvent", batch: false },
  { name: "batchUsageEvent", service: "metering", route: "/api/batchUsageEvent", batch: true },
  { name: "token exchange", service: "entra", route: "/:tenant/oauth2/v2.0/token", batch: true },
  { name: "Key Vault sign", service: "keyvault", route: "/keys/:name/:version/sign", batch: false },
];

const F = suite("transient faults");
let hour = 0;
let dimIndex = 0;

for (const target of TARGETS) {
  for (const fault of FAULTS) {
    F(`${fault.name} on the ${target.name}: retried, accepted exactly once`, async () => {
      // A fresh (hour, dimension) slot per case.
      if (dimIndex >= c1.dimensions.length) {
        dimIndex = 0;
        hour++;
      }
      const dim = c1.dimensions[dimIndex++];
      const slot = hourBack(1 + hour);
      await admin(sb, "DELETE", "/requests");
      await admin(sb, "DELETE", "/faults");
      await admin(sb, "POST", "/faults", { service: target.service, route: target.route, method: "POST", times: 1, ...fault.spec });
      let r;
      const expected: Array<{ c: typeof c1; q: number }> = [];
      if (target.batch) {
        const path = join(dataDir, "..", `faults-${Date.now()}.csv`);
        const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
        for (const [i, c] of [c1, c2].entries()) {
          lines.push(`${c.subscriptionId},${c.managedResourceGroup},${dim},${i + 3},${isoHour(slot)}`);
          expected.push({ c, q: i + 3 });
        }
        await writeFile(path, `${lines.join("\n")}\n`);
        r = await runScript("2-emit-meter.mts", ["--file", path, "--concurrency", "1"], { env });
      } else {
        r = await runScript("2-emit-meter.mts", [c1.subscriptionId, c1.managedResourceGroup, await hoursAgoOf(slot), dim, "2"], { env });
        expected.push({ c: c1, q: 2 });
      }
      assert.is(r.code, 0, describe(r));
      assert.equal(await admin(sb, "GET", "/faults"), [], "the one-time fault was used up");
      const c = await counters();
      const calls = Object.entries(c[target.service] ?? {}).filter(([k]) => k === `POST ${target.route}`).reduce((a, [, v]) => a + v, 0);
      assert.ok(calls >= 2, `the faulted call was retried: ${JSON.stringify(c[target.service])}`);
      const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === slot && e.dimension === dim);
      assert.is(evs.length, expected.length, JSON.stringify(evs));
      for (const { c: cust, q } of expected) {
        const mine = evs.filter((e) => e.resourceId === cust.resourceUsageId);
        assert.is(mine.length, 1);
        assert.is(mine[0].quantity, q);
      }
      const { ledger } = await loadLedger({ auditPath });
      assert.is(ledger.unresolved().length, 0, "the audit log has an outcome for every intent");
    });
  }
}

F("a fault that outlasts every retry leaves the event open; the next run sends it again and closes it", async () => {
  await admin(sb, "DELETE", "/faults");
  const dim = c2.dimensions[5];
  const slot = hourBack(12);
  await admin(sb, "POST", "/faults", { service: "metering", route: "/api/usageEvent", method: "POST", kind: "drop", times: -1 });
  const r = await runScript("2-emit-meter.mts", [c2.subscriptionId, c2.managedResourceGroup, await hoursAgoOf(slot), dim, "9"], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /sent again on the next run|resending later is safe/);
  // The first attempt was accepted before the connection dropped.
  const accepted = (await events()).filter((e) => e.dimension === dim && Date.parse(e.effectiveStartTime) === slot);
  assert.is(accepted.length, 1);
  let { ledger } = await loadLedger({ auditPath });
  assert.is(ledger.unresolved().length, 1);
  await admin(sb, "DELETE", "/faults");
  // Any run resends it: here one with nothing else to do.
  const again = await runScript("2-emit-meter.mts", ["--resend", "--json"], { env });
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).counts, { Duplicate: 1 });
  ({ ledger } = await loadLedger({ auditPath }));
  assert.is(ledger.unresolved().length, 0);
  assert.is((await events()).filter((e) => e.dimension === dim && Date.parse(e.effectiveStartTime) === slot).length, 1);
});

F("a fresh connection: Entra's propagation error (AADSTS70021) is retried until the credential works", async () => {
  await admin(sb, "DELETE", "/faults");
  // The credential propagates when the test says so: once Entra has refused the exchange and the
  // script has asked again (whatever the time its start-up took), not after a fixed delay.
  await admin(sb, "PATCH", "/options", { entra: { ficPropagationDelayMs: 3_600_000 } });
  try {
    const connect = await runScript("1-connect-customer.mts", [fresh.subscriptionId, fresh.managedResourceGroup], { env });
    assert.is(connect.code, 0, describe(connect));
    await admin(sb, "DELETE", "/requests");
    let ended = false;
    const run = runScript("2-emit-meter.mts", [fresh.subscriptionId, fresh.managedResourceGroup, "1", fresh.dimensions[0], "1"], { env })
      .finally(() => (ended = true));
    const exchanges = () => sb.obs.counters.entra?.["POST /:tenant/oauth2/v2.0/token"] ?? 0;
    while (!ended && exchanges() < 2) await new Promise((r) => setTimeout(r, 20));
    await admin(sb, "PATCH", "/options", { entra: { ficPropagationDelayMs: 0 } });
    const r = await run;
    assert.is(r.code, 0, describe(r));
    assert.match(r.stderr, /AADSTS70021 .*retrying/);
    const c = await counters();
    assert.ok((c.entra?.["POST /:tenant/oauth2/v2.0/token"] ?? 0) >= 2, JSON.stringify(c.entra));
    assert.is((await events()).filter((e) => e.resourceId === fresh.resourceUsageId).length, 1);
  } finally {
    await admin(sb, "PATCH", "/options", { entra: { ficPropagationDelayMs: 0 } });
  }
});

F.after(async () => {
  await sb.stop();
});

F.run();
