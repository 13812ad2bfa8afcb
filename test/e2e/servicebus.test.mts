// 3-servicebus against the sandbox: the command-queue / status-queue pattern between the provider
// (the script, as the customer's UAMI) and the customer's workload (here: raw REST calls with a
// token of an identity of the customer's tenant). Checked against the sandbox's queues.
import { randomUUID } from "node:crypto";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, inheritedEnv, ROOT, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { createServiceBus, grantRole, tokenFor, type Principal } from "../helpers/arm.mts";
import { connectCustomer, customerConfig, JWT_RE, readAudit, roleAssignmentsOf, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
await connectCustomer(env, customer);
// What the managed application deployed into its MRG: a namespace with a command and a status queue,
// and its workload's identity, which reads commands and writes status.
const ns = await createServiceBus(sb, mrg, "fabrikam-ops", ["commands", "status"]);
const workload: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
await grantRole(sb, `${ns.id}/queues/commands`, workload.objectId, ROLE.ServiceBusDataReceiver);
await grantRole(sb, `${ns.id}/queues/status`, workload.objectId, ROLE.ServiceBusDataSender);

const run = (args: string[], stdin?: string) => runScript("3-servicebus.mts", [customer.subscriptionId, customer.managedResourceGroup, ...args], { env, stdin });
const queue = async (name: string) => (await admin<Array<any>>(sb, "GET", `/servicebus/queues?namespace=fabrikam-ops&queue=${name}`))[0];
const workloadCall = async (method: string, path: string, o: { body?: string; headers?: Record<string, string> } = {}) => {
  const res = await fetch(new URL(path, ns.endpoint), {
    method, body: o.body,
    headers: { authorization: `Bearer ${await tokenFor(sb, workload, "https://servicebus.azure.net")}`, ...(o.headers ?? {}) },
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
};

const T = suite("3-servicebus");

T("before the UAMI has a data role: exit 1, the message names the role to grant, nothing enqueued", async () => {
  const r = await run(["fabrikam-ops", "send", "commands"], "{\"op\":\"ping\"}");
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Azure Service Bus Data Sender/);
  // The identity that lacks the role (the UAMI) and the command that grants it to that identity.
  assert.match(r.stderr, /The customer's UAMI metering-submission-uami \(principal [0-9a-f-]+\) needs the 'Azure Service Bus Data Sender' role/);
  assert.match(r.stderr, new RegExp(`grant it to that identity with 1-connect-customer\\.mts ${customer.subscriptionId} ${customer.managedResourceGroup} --grant "Azure Service Bus Data Sender"`));
  assert.is((await queue("commands")).messages.length, 0);
});

T("1-connect-customer --grant gives the UAMI Sender and Receiver on the MRG through the template", async () => {
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup, "--grant", "Azure Service Bus Data Sender", "--grant", "service bus data receiver"], env);
  const cc = await customerConfig(env, customer);
  const roles = roleAssignmentsOf(sb, cc.uamiPrincipalId);
  assert.equal(roles.map((r) => r.roleId).sort(), [ROLE.ServiceBusDataReceiver, ROLE.ServiceBusDataSender].sort());
  assert.ok(roles.every((r) => r.scope.toLowerCase() === mrg.toLowerCase()));
});

T("the provider sends a command; the customer's workload receives it with its properties", async () => {
  const r = await run(["fabrikam-ops", "send", "commands", "--property", "tenant=fabrikam", "--label", "restart", "--correlation-id", "job-42", "--json"], "{\"op\":\"restart\",\"service\":\"api\"}");
  assert.is(r.code, 0, describe(r));
  assert.is(JSON.parse(r.stdout).contentType, "application/json");
  const q = await queue("commands");
  assert.is(q.messages.length, 1);
  assert.is(q.messages[0].body, "{\"op\":\"restart\",\"service\":\"api\"}");
  assert.equal(q.messages[0].userProperties, { tenant: "fabrikam" });
  assert.is(q.messages[0].label, "restart");
  const got = await workloadCall("POST", "commands/messages/head?timeout=5");
  assert.is(got.status, 201);
  assert.is(JSON.parse(got.text).op, "restart");
  assert.is(JSON.parse(got.headers.get("brokerproperties")!).CorrelationId, "job-42");
  assert.is(got.headers.get("tenant"), "\"fabrikam\"");
  assert.is((await workloadCall("DELETE", new URL(got.headers.get("location")!).pathname)).status, 200);
  assert.is((await queue("commands")).completedCount, 1);
});

T("the workload replies on the status queue; the provider reads it back as a JSON line and completes it", async () => {
  const reply = await workloadCall("POST", "status/messages", {
    body: "{\"op\":\"restart\",\"result\":\"done\"}",
    headers: { "content-type": "application/json", BrokerProperties: JSON.stringify({ CorrelationId: "job-42" }), State: "\"ok\"" },
  });
  assert.is(reply.status, 201);
  const r = await run(["fabrikam-ops", "receive", "status", "--wait", "5"]);
  assert.is(r.code, 0, describe(r));
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.is(lines.length, 1);
  assert.is(lines[0].body, "{\"op\":\"restart\",\"result\":\"done\"}");
  assert.is(lines[0].correlationId, "job-42");
  assert.is(lines[0].properties.state, "ok");
  assert.is(lines[0].deliveryCount, 1);
  const q = await queue("status");
  assert.is(q.messages.length, 0, "completed after it was printed");
  assert.is(q.completedCount, 1);
});

T("receive on an empty queue: exit 0 and nothing on stdout; --max takes several in order", async () => {
  const empty = await run(["fabrikam-ops", "receive", "status"]);
  assert.is(empty.code, 0, describe(empty));
  assert.is(empty.stdout, "");
  for (const n of [1, 2, 3]) assert.is((await workloadCall("POST", "status/messages", { body: `m${n}`, headers: { "content-type": "text/plain" } })).status, 201);
  const r = await run(["fabrikam-ops", "receive", "status", "--max", "2"]);
  assert.is(r.code, 0, describe(r));
  assert.equal(r.stdout.trim().split("\n").map((l) => JSON.parse(l).body), ["m1", "m2"]);
  assert.equal((await queue("status")).messages.map((m: { body: string }) => m.body), ["m3"]);
});

T("--watch prints messages as they come and stops cleanly on SIGTERM", async () => {
  const [cmd, ...pre] = tsRunner();
  const child = spawn(cmd, [...pre, join(ROOT, "scripts", "3-servicebus.mts"), customer.subscriptionId, customer.managedResourceGroup, "fabrikam-ops", "receive", "status", "--watch", "--wait", "2"], {
    env: { ...inheritedEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  // m4 is sent once the watcher has printed m3, so it arrives while the watcher runs, however
  // long the start-up took; a watcher that exits first fails the test at once.
  const lines = () => stdout.split("\n").filter(Boolean).length;
  const exitedEarly = new Promise<never>((_, rej) => child.once("exit", (code) => rej(new Error(`exited ${code} before two lines: ${stdout} ${stderr}`))));
  const twoLines = new Promise<void>((resolve, reject) => child.stdout.on("data", (d) => {
    const before = lines();
    stdout += d;
    if (before === 0 && lines() === 1) {
      workloadCall("POST", "status/messages", { body: "m4", headers: { "content-type": "text/plain" } }).catch(reject);
    }
    if (lines() >= 2) resolve();
  }));
  let backstop: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, rej) => (backstop = setTimeout(() => rej(new Error(`no two lines in 120 s: ${stdout} ${stderr}`)), 120_000)));
  await Promise.race([twoLines, exitedEarly, hung]).finally(() => clearTimeout(backstop));
  child.kill("SIGTERM");
  const code = await new Promise((r) => child.once("close", r));
  // Deno's child_process reports (null, "SIGTERM") for any child it signalled, whatever the child's
  // own exit code; the last progress line shows the script ran to its end there too.
  assert.is(code, "Deno" in globalThis ? null : 0, stderr);
  assert.match(stderr, /Stopping after the current message\n2 message\(s\) received and completed/);
  assert.equal(stdout.trim().split("\n").map((l) => JSON.parse(l).body), ["m3", "m4"]);
  assert.is((await queue("status")).messages.length, 0);
});

T("the audit log has every exchange, bodies by hash, no token", async () => {
  const { text, records } = await readAudit(env);
  assert.not.match(text, JWT_RE);
  assert.not.match(text, /result\\":\\"done/, "no message content");
  const ops = records.map((r) => r.operation);
  assert.ok(ops.includes("servicebus.send") && ops.includes("servicebus.receive") && ops.includes("servicebus.complete"));
  const send = records.find((r) => r.operation === "servicebus.send" && r.response?.status === 201)!;
  assert.match(send.request.body.sha256, /^[0-9a-f]{64}$/);
  assert.ok(send.tokenClaims.appid);
});

T("bad input: exit 2, one clear line, nothing sent", async () => {
  const before = (await queue("commands")).messages.length;
  const cases: Array<[string[], string | undefined, RegExp]> = [
    [["fabrikam-ops", "send"], "x", /expected <subscription>/],
    [["fabrikam-ops", "send", "no-such-queue"], "x", /queue 'no-such-queue'/],
    [["nosuch-namespace", "send", "commands"], "x", /namespace 'nosuch-namespace'/],
    [["fabrikam-ops", "publish", "commands"], "x", /expected send or receive/],
    [["fabrikam-ops", "send", "commands"], "", /empty message/],
    [["fabrikam-ops", "send", "commands", "--property", "novalue"], "x", /Cannot use property/],
    [["fabrikam-ops", "send", "commands", "--max", "2"], "x", /--max belongs to receive/],
    [["fabrikam-ops", "receive", "commands", "--max", "0"], undefined, /--max/],
    [["fabrikam-ops", "send", "commands", "--body", "/no/such/file"], undefined, /Cannot read the message body/],
  ];
  for (const [a, stdin, re] of cases) {
    const r = await run(a, stdin);
    assert.is(r.code, 2, `${a.join(" ")}: ${describe(r)}`);
    assert.match(r.stderr, re);
    assert.not.match(r.stderr, /^\s+at /m);
  }
  assert.is((await queue("commands")).messages.length, before);
});

T.after(() => sb.stop());
T.run();
