// Bad input to 2-emit-meter, as a process against the sandbox: every bad row of a file is shown
// at once (format problems, customers not connected and hours given twice, in one run) with
// its line, without --verbose; a file that is not UTF-8 and a quantity like 1e308 are refused;
// a usage error is one line and a pointer to --help. In every case the exit code is 2 and the
// sandbox saw no Key Vault signature, no token request and no metering call, and no audit
// record was written.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript, type RunResult } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";

// Two customers in the world; only the first is connected.
const { sb, env, dataDir, auditPath, customers, counters } = await startFleet({ customers: 2, dimensions: 3, connect: 1 });
const [connected, stranger] = customers;
const HEAD = "subscription,managed-resource-group,dimension,quantity,hours-ago";
const rowOf = (c: typeof connected, dimension: string, quantity: string | number, hoursAgo: number) => `${c.subscriptionId},${c.managedResourceGroup},${dimension},${quantity},${hoursAgo}`;
const readAuditText = () => readFile(auditPath, "utf8").catch(() => undefined);
let fileNumber = 0;
const file = async (name: string, content: string | Uint8Array) => {
  const path = join(dataDir, "..", `input-${process.pid}-${fileNumber++}-${name}`);
  await writeFile(path, content);
  return path;
};

/**
 * Runs 2-emit-meter and checks that nothing was signed, requested or sent, and nothing
 * written to the audit log; returns the run.
 */
async function refused(args: string[], stdin?: string | Uint8Array): Promise<RunResult> {
  const audit = await readAuditText();
  await admin(sb, "DELETE", "/requests");
  const r = await runScript("2-emit-meter.mts", args, { env, ...(stdin === undefined ? {} : { stdin }) });
  assert.is(r.code, 2, describe(r));
  const c = await counters();
  const routes = (svc: string) => Object.keys(c[svc] ?? {});
  assert.equal(routes("keyvault").filter((k) => /sign/.test(k)), [], `no Key Vault signature: ${JSON.stringify(c)}`);
  assert.equal(routes("entra").filter((k) => /token/.test(k)), [], `no token request: ${JSON.stringify(c)}`);
  assert.equal(routes("metering"), [], `no metering call: ${JSON.stringify(c)}`);
  assert.is(await readAuditText(), audit, "the audit log is as it was");
  assert.is(r.stdout, "");
  assert.not.match(r.stderr, /^\s+at /m, "no stack trace");
  assert.not.match(r.stderr, /Usage:/, "no usage text");
  return r;
}

const I = suite("2-emit-meter: bad input is shown, whole, at once");

I("a file with format problems, a customer not connected and an hour twice: every problem with its line, in one run", async () => {
  const [d1, d2, d3] = connected.dimensions;
  const text = [
    HEAD,
    rowOf(connected, d1, 1, 2),
    rowOf(connected, d2, "abc", 2), // line 3: format
    rowOf(stranger, d1, 1, 2), // line 4: not connected
    rowOf(connected, d1, 7, 2), // line 5: the hour of line 2 again
    `${connected.subscriptionId},${connected.managedResourceGroup},${d3},1`, // line 6: a column short
    rowOf(connected, d3, "1,5", 2).replace(",1,5,", ',"1,5",'), // line 7: a decimal comma
  ].join("\n");
  const r = await refused(["--file", await file("mixed.csv", text)]);
  assert.equal(r.stderr.split("\n"), [
    `Cannot send ${join(dataDir, "..", `input-${process.pid}-${fileNumber - 1}-mixed.csv`)}: 5 bad row(s); nothing was sent (fix them, or pass --skip-invalid to send the rest)`,
    `  line 3: quantity "abc": expected a decimal number greater than 0`,
    `  line 4: customer ${stranger.subscriptionId}/${stranger.managedResourceGroup} is not connected (run 1-connect-customer ${stranger.subscriptionId} ${stranger.managedResourceGroup} first)`,
    "  line 5: same customer, dimension and hour as line 2: the API keeps one event per hour, so add the quantities into one row",
    "  line 6: expected 5 columns, got 4",
    '  line 7: quantity "1,5": use a dot: 1.5',
    "",
  ]);
});

I("--dry-run shows the same problems and exits 2", async () => {
  const text = [HEAD, rowOf(connected, connected.dimensions[0], "x", 3), rowOf(stranger, connected.dimensions[0], 1, 3)].join("\n");
  const path = await file("dry.csv", text);
  const sent = await refused(["--file", path]);
  const dry = await refused(["--file", path, "--dry-run"]);
  assert.is(dry.stderr, sent.stderr);
  assert.match(dry.stderr, /\n {2}line 2: quantity "x"/);
  assert.match(dry.stderr, /\n {2}line 3: customer .* is not connected/);
});

I("more than 20 bad rows: the first 20 by line and how many more", async () => {
  const rows = Array.from({ length: 23 }, (_, i) => rowOf(connected, connected.dimensions[0], 0, i % 24));
  const r = await refused(["--file", await file("many.csv", [HEAD, ...rows].join("\n"))]);
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[0], /: 23 bad row\(s\); nothing was sent/);
  assert.equal(lines.slice(1, 21).map((l) => Number(/^ {2}line (\d+):/.exec(l)?.[1])), Array.from({ length: 20 }, (_, i) => i + 2));
  assert.equal(lines.slice(21), ["  … and 3 more"]);
});

I("a file that is not UTF-8 is refused, naming its lines, from a file and from stdin", async () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const latin1 = new Uint8Array([...enc(`${HEAD}\n${rowOf(connected, connected.dimensions[0], 1, 4)}\n`), ...enc(`${connected.subscriptionId},${connected.managedResourceGroup},gr`), 0xf6, ...enc("sse,1,4\n")]);
  const r = await refused(["--file", await file("latin1.csv", latin1)]);
  assert.match(r.stderr, /: 1 bad row\(s\); nothing was sent/);
  assert.match(r.stderr, /\n {2}line 3: not valid UTF-8 text \(save the file as UTF-8; in Excel: CSV UTF-8\)\n$/);
  const utf16 = new Uint8Array([0xff, 0xfe, ...[...HEAD].flatMap((ch) => [ch.charCodeAt(0), 0])]);
  const u = await refused(["--file", await file("utf16.csv", utf16)]);
  assert.match(u.stderr, /\n {2}line 1: the file is UTF-16 \(it starts with a UTF-16 byte order mark\); save it as UTF-8\n$/);
  const s = await refused(["--file", "-"], new Uint8Array([...enc(`${HEAD}\n`), 0x30, 0xc3, 0x28, ...enc(",x,d,1,1\n")]));
  assert.is(s.stderr, "Cannot send stdin: 1 bad row(s); nothing was sent (fix them, or pass --skip-invalid to send the rest)\n  line 2: not valid UTF-8 text (save the file as UTF-8; in Excel: CSV UTF-8)\n");
});

I("a quantity of 1e308 is refused in a file and on the command line, and --max-quantity can allow more", async () => {
  const d = connected.dimensions[1];
  const r = await refused(["--file", await file("huge.csv", [HEAD, rowOf(connected, d, "1e308", 5)].join("\n"))]);
  assert.match(r.stderr, /\n {2}line 2: quantity "1e308": above the ceiling of 1000000 per event \(a unit mix-up\?\); pass --max-quantity to allow more\n$/);
  const one = await refused([connected.subscriptionId, connected.managedResourceGroup, "5", d, "1e308"]);
  assert.is(one.stderr, 'Cannot use quantity "1e308": above the ceiling of 1000000 per event (a unit mix-up?); pass --max-quantity to allow more\nRun with --help for usage\n');
  const json = await refused(["--file", "-"], `${JSON.stringify({ subscriptionId: connected.subscriptionId, mrg: connected.managedResourceGroup, dimension: d, quantity: 1e308, hoursAgo: 5 })}\n`);
  assert.match(json.stderr, /^Cannot send stdin: 1 bad row\(s\)/);
  assert.match(json.stderr, /\n {2}line 1: quantity "1e\+308": above the ceiling of 1000000 per event/);
  const allowed = await runScript("2-emit-meter.mts", ["--file", await file("huge-ok.csv", [HEAD, rowOf(connected, d, "2000000", 5)].join("\n")), "--max-quantity", "5e6", "--dry-run"], { env });
  assert.is(allowed.code, 0, describe(allowed));
  assert.match(allowed.stdout, /^Would send 1 event\(s\)/);
});

I("a usage error is one line and a pointer to --help", async () => {
  for (const [args, first] of [
    [["--bogus"], "Cannot parse arguments: Unknown option '--bogus'"],
    [[connected.subscriptionId, connected.managedResourceGroup, "1", connected.dimensions[0]], "Cannot run: expected <subscription> <managed-resource-group> <hours-ago> <dimension> <quantity>, got 4 argument(s)"],
    [[connected.subscriptionId, connected.managedResourceGroup, "1", connected.dimensions[0], "-1"], 'Cannot use quantity "-1": expected a decimal number greater than 0'],
    [["--file", "-", "--format", "xml"], 'Cannot use --format "xml": expected csv or jsonl'],
  ] as const) {
    const r = await refused([...args]);
    assert.is(r.stderr, `${first}\nRun with --help for usage\n`, args.join(" "));
  }
});

I("a file that cannot be read is an input error: its one line, no pointer to --help", async () => {
  const r = await refused(["--file", join(dataDir, "no-such-file.csv")]);
  assert.is(r.stderr, `Cannot read --file ${join(dataDir, "no-such-file.csv")}: no such file\n`);
  const empty = await refused(["--file", await file("empty.csv", `${HEAD}\n`)]);
  assert.match(empty.stderr, /^Cannot send .*empty\.csv: it holds no events\n$/);
});

I.after(async () => {
  await sb.stop();
});

I.run();
