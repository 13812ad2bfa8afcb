// 1-disconnect-customer as a process against the sandbox: --dry-run changes nothing; a customer
// with a usage event sent but never answered (the emitting process was killed mid-request) is
// refused unless --force; a disconnect removes the FIC and the UAMI from the sandbox's ARM state
// and the entry from config.json, and keeps every line of the audit log.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const [first, second, third] = sb.world.customers;
const whoOf = (c: typeof first) => [c.subscriptionId, c.managedResourceGroup];
const configPath = join(env.METERING_DATA_DIR, "config.json");
const auditPath = join(env.METERING_DATA_DIR, "audit.jsonl");
const readConfig = async () => JSON.parse(await readFile(configPath, "utf8"));
const readAudit = () => readFile(auditPath, "utf8").catch(() => "");
const entryOf = async (c: typeof first) => (await readConfig()).customers[c.subscriptionId]?.[c.managedResourceGroup];
const uamiOf = (clientId: string) => sb.state.findIdentityByClientId(clientId);
// The metering API took the one delay fault: the batch reached it, so its intent is on disk.
const batchHeldByTheApi = () => sb.obs.faults.length === 0;

const X = suite("1-disconnect-customer");

X.before(async () => {
  for (const [script, args] of [
    ["0-add-defaults.mts", []], ["0-isv-setup.mts", []], ["1-connect-customer.mts", whoOf(first)], ["1-connect-customer.mts", whoOf(second)],
    ["2-emit-meter.mts", [...whoOf(first), "1", first.dimensions[0], "3"]],
  ] as const) {
    const r = await runScript(script, [...args], { env });
    assert.is(r.code, 0, `${script}: ${describe(r)}`);
  }
});

X("--dry-run lists the FIC, the UAMI and the config entry, and changes nothing", async () => {
  const configBefore = await readFile(configPath, "utf8");
  const resourcesBefore = sb.state.resources.size;
  const r = await runScript("1-disconnect-customer.mts", [...whoOf(first), "--dry-run"], { env });
  assert.is(r.code, 0, describe(r));
  const cc = await entryOf(first);
  // The plan names what goes (the ids are in --json), in lines that fit 80 columns.
  const text = r.stdout.replace(/\n {2,}/g, " ");
  assert.match(text, new RegExp(`would delete federated credential\\s+fed\\S* of ${cc.uamiId.split("/").pop()}`, "i"));
  assert.match(text, new RegExp(`would delete managed identity\\s+.*\\(clientId ${cc.uamiClientId}\\)`));
  for (const line of r.stdout.split("\n")) assert.ok(line.length <= 80, line);
  assert.match(r.stdout, /would delete config entry/);
  assert.match(r.stdout, /kept\s+audit log/);
  assert.is(await readFile(configPath, "utf8"), configBefore);
  assert.is(sb.state.resources.size, resourcesBefore);
  const json = await runScript("1-disconnect-customer.mts", [...whoOf(first), "--dry-run", "--json"], { env });
  assert.is(json.code, 0, describe(json));
  const plan = JSON.parse(json.stdout);
  assert.is(plan.dryRun, true);
  assert.is(plan.federatedCredentials.length, 1);
  assert.is(plan.uamiExists, true);
});

X("disconnect: FIC and UAMI leave the MRG, the entry leaves config, the audit log only grows", async () => {
  const cc = await entryOf(first);
  const uami = uamiOf(cc.uamiClientId)!;
  assert.is(sb.state.federatedCredentialsOf(uami.id).length, 1);
  const auditBefore = await readAudit();
  const r = await runScript("1-disconnect-customer.mts", whoOf(first), { env });
  assert.is(r.code, 0, describe(r));
  assert.is(uamiOf(cc.uamiClientId), undefined, "the UAMI is gone from the sandbox");
  assert.equal(sb.state.federatedCredentialsOf(uami.id), [], "its FIC is gone");
  assert.is(await entryOf(first), undefined);
  assert.ok(await entryOf(second), "the other customer stays");
  const auditAfter = await readAudit();
  assert.ok(auditAfter.startsWith(auditBefore), "every earlier audit line is kept");
  const last = JSON.parse(auditAfter.trim().split("\n").at(-1)!);
  assert.is(last.operation, "customer.disconnect");
  assert.is(last.customer.managedResourceGroup, first.managedResourceGroup);
  assert.is(last.deletedIdentity, true);
  assert.is(last.deletedCredentials.length, 1);
  // The customer can no longer be billed through this tool, and the doctor no longer lists it.
  const emit = await runScript("2-emit-meter.mts", [...whoOf(first), "2", first.dimensions[0], "1"], { env });
  assert.is(emit.code, 2, describe(emit));
  const doctor = await runScript("doctor.mts", ["--json"], { env });
  assert.not.ok(JSON.parse(doctor.stdout).checks.some((c: { target: string }) => c.target.includes(first.managedResourceGroup)));
});

X("events sent without a recorded answer block the disconnect, named with their values; --force goes ahead", async () => {
  // The emitting process dies while the metering API holds its batch: the intent stays unanswered.
  const usage = join(env.METERING_DATA_DIR, "pending.csv");
  await writeFile(usage, `subscription,managed-resource-group,dimension,quantity,hours-ago\n${whoOf(second).join(",")},${second.dimensions[0]},4,1\n${whoOf(second).join(",")},${second.dimensions[0]},6.5,2\n`);
  await admin(sb, "POST", "/faults", { service: "metering", kind: "delay", delayMs: 25_000, times: 1 });
  const killed = await runScript("2-emit-meter.mts", ["--file", usage], { env, killWhen: batchHeldByTheApi });
  await admin(sb, "DELETE", "/faults");
  assert.is(killed.code, null, `expected a killed process: ${describe(killed)}`);
  const intents = (await readAudit()).trim().split("\n").map((l) => JSON.parse(l)).filter((x) => x.operation === "batchUsageEvent.intent" && x.customer.managedResourceGroup === second.managedResourceGroup);
  assert.is(intents.length, 1);
  const keys = intents[0].request.body.request.map((e: { resourceId: string; dimension: string; effectiveStartTime: string }) => `${e.resourceId.toLowerCase()}|${e.dimension}|${e.effectiveStartTime.slice(0, 13)}:00:00Z`).sort();

  const cc = await entryOf(second);
  const configBefore = await readFile(configPath, "utf8");
  const refused = await runScript("1-disconnect-customer.mts", whoOf(second), { env });
  assert.is(refused.code, 1, describe(refused));
  assert.match(refused.stderr, new RegExp(`2 usage event\\(s\\) were sent without a recorded answer: (4 ${second.dimensions[0]} for \\S+ \\(sent [^)]+, no answer recorded\\); 6.5|6.5 ${second.dimensions[0]} for \\S+ \\(sent [^)]+, no answer recorded\\); 4) `), describe(refused));
  assert.match(refused.stderr, /2-emit-meter.mts --resend/);
  assert.match(refused.stderr, /--force/);
  assert.is(await readFile(configPath, "utf8"), configBefore);
  assert.ok(uamiOf(cc.uamiClientId), "nothing deleted");

  const dry = await runScript("1-disconnect-customer.mts", [...whoOf(second), "--dry-run", "--json"], { env });
  assert.is(dry.code, 0, describe(dry));
  assert.match(dry.stderr, /would be refused/);
  assert.equal(JSON.parse(dry.stdout).pendingEvents.map((p: { key: string }) => p.key).sort(), keys);

  const forced = await runScript("1-disconnect-customer.mts", [...whoOf(second), "--force"], { env });
  assert.is(forced.code, 0, describe(forced));
  assert.is(uamiOf(cc.uamiClientId), undefined);
  assert.is(await entryOf(second), undefined);
  const last = JSON.parse((await readAudit()).trim().split("\n").at(-1)!);
  assert.equal([...last.forcedWithPendingEvents].sort(), keys);
});

X("once the pending events are settled by --resend, the disconnect goes ahead without --force", async () => {
  const connect = await runScript("1-connect-customer.mts", whoOf(third), { env });
  assert.is(connect.code, 0, describe(connect));
  const usage = join(env.METERING_DATA_DIR, "pending-third.csv");
  await writeFile(usage, `subscription,managed-resource-group,dimension,quantity,hours-ago\n${whoOf(third).join(",")},${third.dimensions[0]},2,3\n`);
  await admin(sb, "POST", "/faults", { service: "metering", kind: "delay", delayMs: 25_000, times: 1 });
  const killed = await runScript("2-emit-meter.mts", ["--file", usage], { env, killWhen: batchHeldByTheApi });
  await admin(sb, "DELETE", "/faults");
  assert.is(killed.code, null, `expected a killed process: ${describe(killed)}`);
  assert.is((await runScript("1-disconnect-customer.mts", whoOf(third), { env })).code, 1, "refused while pending");

  const resend = await runScript("2-emit-meter.mts", ["--resend", "--json"], { env });
  // The events the --force disconnect above went ahead without stay Unknown (they may have been
  // billed), so --resend lists them and exits 1; this customer's event is settled.
  assert.is(resend.code, 1, describe(resend));
  const { counts } = JSON.parse(resend.stdout) as { counts: Record<string, number> };
  assert.equal([counts.Unknown, (counts.Accepted ?? 0) + (counts.Duplicate ?? 0)], [2, 1], describe(resend));
  const billed = (await admin<Array<{ dimension: string; quantity: number; resourceId: string }>>(sb, "GET", "/metering/events")).filter((e) => e.resourceId === third.resourceUsageId);
  assert.equal(billed.map((e) => [e.dimension, e.quantity]), [[third.dimensions[0], 2]], "the delayed batch and the resend bill once");
  const r = await runScript("1-disconnect-customer.mts", whoOf(third), { env });
  assert.is(r.code, 0, describe(r));
  assert.is(await entryOf(third), undefined);
});

X("a customer that is not connected, and bad input: exit 2, nothing changed", async () => {
  const before = await readFile(configPath, "utf8");
  for (const args of [whoOf(first), ["not-a-guid", first.managedResourceGroup], [first.subscriptionId], [...whoOf(first), "--bogus"]]) {
    const r = await runScript("1-disconnect-customer.mts", args, { env });
    assert.is(r.code, 2, `${args.join(" ")}: ${describe(r)}`);
    assert.not.match(r.stderr, /^\s+at /m);
  }
  assert.is(await readFile(configPath, "utf8"), before);
});

X("--help exits 0 with the usage", async () => {
  const r = await runScript("1-disconnect-customer.mts", ["--help"], { env });
  assert.is(r.code, 0);
  assert.match(r.stdout, /^Usage: 1-disconnect-customer\.mts/);
});

X.after(() => sb.stop());
X.run();
