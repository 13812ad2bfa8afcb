// `npm run demo` is what a newcomer runs first (README: "Try it in two commands"): it must work
// from a clean state and do what it says. Runs sandbox/demo.mts as a process with --keep, then
// checks the sandbox it started: the events the metering API accepted and the calls it got.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describe, runFile } from "../helpers/scripts.mts";

const T = suite("npm run demo");
const dir = await mkdtemp(join(tmpdir(), "metering-demo-"));
const sbDir = join(dir, "sandbox");

interface MeteringEvent { resourceId: string; dimension: string; quantity: number; effectiveStartTime: string }

T.after(async () => {
  await runFile("sandbox/cli.mts", ["stop", "--dir", sbDir]);
  await rm(dir, { recursive: true, force: true });
});

T("runs the whole workflow; the metering API holds exactly the five events, sent in one call per customer and batch", async () => {
  const r = await runFile("sandbox/demo.mts", ["--keep", "--dir", sbDir], { env: { METERING_DATA_DIR: join(dir, "data") }, timeoutMs: 300_000 });
  assert.is(r.code, 0, describe(r));
  for (const step of ["0. ISV setup", "Connect customer", "A usage file for both customers", "The same file again", "Doctor"]) assert.ok(r.stdout.includes(step), `step "${step}" missing\n${describe(r)}`);
  assert.match(r.stderr, /17 ok, 0 broken/, describe(r));
  // Not a terminal: no colour. The end is a short table and what to try next, not pages of JSON.
  assert.not.ok(r.stdout.includes("\x1b["), "no escape sequences in a pipe");
  const tail = r.stdout.slice(r.stdout.lastIndexOf("== What the metering API recorded"));
  assert.match(tail, /^CUSTOMER\s+DIMENSION\s+HOUR \(UTC\)\s+QUANTITY$/m, describe(r));
  assert.match(tail, /^fabrikam\s+\S+\s+\d{4}-\d{2}-\d{2}T\d{2}:00Z\s+12\.5$/m);
  assert.match(tail, /^last: batchUsageEvent at /m);
  assert.not.match(tail, /"effectiveStartTime"/);
  assert.ok(tail.split("\n").length < 40, `${tail.split("\n").length} lines at the end`);
  for (const line of tail.split("\n")) assert.ok([...line].length <= 80, `${[...line].length} columns: ${line}`);
  assert.match(tail, /== Try it by hand/);
  assert.match(tail, new RegExp(`source ${sbDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/env`));
  assert.match(tail, /(node|deno run -A) scripts\/(1-list-customers\.mts|run\.mjs 1-list-customers)/);
  assert.match(r.stdout.trimEnd().split("\n").at(-1)!, /^Stop it: npm run sandbox -- stop --dir /);

  const info = JSON.parse(await readFile(join(sbDir, "sandbox.json"), "utf8"));
  const [fabrikam, tailwind] = info.world.customers;
  const events: MeteringEvent[] = await (await fetch(`${info.endpoints.admin}/metering/events`)).json();
  const hour = (h: number) => new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - h * 3_600_000).toISOString().replace(".000Z", "Z");
  const got = events.map((e) => `${e.resourceId} ${e.dimension} ${e.effectiveStartTime.replace(/\.0+Z$/, "Z")} ${e.quantity}`).sort();
  const want = [
    [fabrikam, 1, 5], [fabrikam, 2, 12.5], [fabrikam, 3, 7], [tailwind, 2, 12.5], [tailwind, 3, 7],
  ].map(([c, h, q]) => `${c.resourceUsageId} ${c.dimensions[0]} ${hour(h as number)} ${q}`).sort();
  // The run may straddle an hour boundary; then every hour is one later. Compare on the shape.
  assert.is(events.length, 5, JSON.stringify(events, null, 2));
  if (got.join() !== want.join()) {
    const shifted = want.map((w) => w.replace(/ (\S+Z) /, (_, t) => ` ${new Date(Date.parse(t) + 3_600_000).toISOString().replace(".000Z", "Z")} `)).sort();
    assert.equal(got, shifted);
  }

  const requests: Record<string, Record<string, number>> = await (await fetch(`${info.endpoints.admin}/requests`)).json();
  const metering = requests.metering ?? {};
  assert.is(metering["POST /api/usageEvent"], 1, JSON.stringify(metering));
  // Two customers, one batch each in the first file run; the second run sends nothing.
  assert.is(metering["POST /api/batchUsageEvent"], 2, JSON.stringify(metering));
});

T.run();
