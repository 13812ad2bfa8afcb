// The emulated Service Bus (docs/azure-behaviour.md §6): namespaces and queues through ARM, then the REST
// runtime API with raw fetch: 401 by token and audience, 403 by data role and scope, 410 for a
// missing queue, send (single and batch), peek-lock with lock tokens and lock duration, complete,
// abandon, renew, receive-and-delete, delivery counts, dead-lettering after maxDeliveryCount.
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { ARM_AUDIENCE, SERVICEBUS_API, arm, createServiceBus, grantRole, tokenFor, type Principal } from "../helpers/arm.mts";

const sb = await startTestSandbox({ azurite: false });
const customer = sb.world.customers[0];
const mrg = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
const SB_AUDIENCE = "https://servicebus.azure.net";

const sender: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
const receiver: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
const nobody: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };
const owner: Principal = { tenantId: customer.tenantId, objectId: randomUUID(), idtyp: "app" };

const ns = await createServiceBus(sb, mrg, "fabrikam-bus", ["commands", "status", { name: "short", properties: { lockDuration: "PT5S", maxDeliveryCount: 3 } }, "other"]);
await grantRole(sb, `${ns.id}/queues/commands`, sender.objectId, ROLE.ServiceBusDataSender);
await grantRole(sb, `${ns.id}/queues/commands`, receiver.objectId, ROLE.ServiceBusDataReceiver);
await grantRole(sb, mrg, owner.objectId, ROLE.ServiceBusDataOwner);

async function call(method: string, path: string, o: { who?: Principal; audience?: string; body?: string; headers?: Record<string, string>; auth?: string } = {}) {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.auth !== undefined) headers.authorization = o.auth;
  else if (o.who) headers.authorization = `Bearer ${await tokenFor(sb, o.who, o.audience ?? SB_AUDIENCE)}`;
  const res = await fetch(new URL(path, ns.endpoint), { method, headers, body: o.body });
  const text = await res.text();
  const broker = res.headers.get("brokerproperties");
  return { status: res.status, text, headers: res.headers, broker: broker ? JSON.parse(broker) : undefined, location: res.headers.get("location") ?? undefined };
}
const send = (queue: string, body: string, who = owner, headers: Record<string, string> = {}) =>
  call("POST", `${queue}/messages`, { who, body, headers: { "content-type": "text/plain", ...headers } });
const lockPath = (location: string) => new URL(location).pathname;
const queueState = async (queue: string) => (await admin<Array<any>>(sb, "GET", `/servicebus/queues?namespace=fabrikam-bus&queue=${queue}`))[0];
/** Empties a queue through receive-and-delete (and its dead letters). */
async function drain(queue: string) {
  while ((await call("DELETE", `${queue}/messages/head`, { who: owner })).status === 200) { /* next */ }
  while ((await call("DELETE", `${queue}/$DeadLetterQueue/messages/head`, { who: owner })).status === 200) { /* next */ }
}

const Arm = suite("ARM: Microsoft.ServiceBus namespaces and queues");

Arm("a namespace gets its own HTTPS serviceBusEndpoint; queues default to lockDuration PT1M and maxDeliveryCount 10", async () => {
  assert.match(ns.endpoint, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  const q = await arm(sb, "GET", `${ns.id}/queues/commands?${SERVICEBUS_API}`);
  assert.is(q.status, 200);
  assert.is(q.json.properties.lockDuration, "PT1M");
  assert.is(q.json.properties.maxDeliveryCount, 10);
  assert.is(q.json.type, "Microsoft.ServiceBus/namespaces/queues");
  const got = await arm(sb, "GET", `${ns.id}?${SERVICEBUS_API}`);
  assert.is(got.json.properties.serviceBusEndpoint, ns.endpoint);
  assert.is(got.json.properties.status, "Active");
});

Arm("bad lockDuration, unknown queue, unknown api-version and a caller without rights are ARM errors", async () => {
  const bad = await arm(sb, "PUT", `${ns.id}/queues/bad?${SERVICEBUS_API}`, { properties: { lockDuration: "PT10M" } });
  assert.is(bad.status, 400);
  assert.match(bad.json.error.message, /lockDuration/);
  const missing = await arm(sb, "GET", `${ns.id}/queues/nope?${SERVICEBUS_API}`);
  assert.is(missing.status, 404);
  assert.is(missing.json.error.code, "ResourceNotFound");
  assert.is((await arm(sb, "GET", `${ns.id}?api-version=1999-01-01`)).status, 400);
  const denied = await arm(sb, "GET", `${ns.id}/queues/commands?${SERVICEBUS_API}`, undefined, nobody);
  assert.is(denied.status, 403);
});

Arm("the queue's ARM view counts active and dead-lettered messages", async () => {
  await send("other", "x");
  const q = await arm(sb, "GET", `${ns.id}/queues/other?${SERVICEBUS_API}`);
  assert.is(q.json.properties.countDetails.activeMessageCount, 1);
  await drain("other");
});

Arm.run();

const Auth = suite("data plane: 401 by token, 403 by role, 410 by queue");

Auth("no token, a SAS header, an ARM token, another tenant's token: 401 with Service Bus's XML error", async () => {
  const none = await call("POST", "commands/messages", { body: "x" });
  assert.is(none.status, 401);
  assert.match(none.headers.get("content-type")!, /application\/xml/);
  assert.match(none.text, /^<Error><Code>401<\/Code><Detail>MissingToken/);
  assert.is((await call("POST", "commands/messages", { body: "x", auth: "SharedAccessSignature sr=x&sig=y&se=1&skn=RootManageSharedAccessKey" })).status, 401);
  const wrongAudience = await call("POST", "commands/messages", { who: owner, audience: ARM_AUDIENCE, body: "x" });
  assert.is(wrongAudience.status, 401);
  assert.match(wrongAudience.text, /InvalidAudience/);
  const foreign = await call("POST", "commands/messages", { who: { ...owner, tenantId: sb.world.customers[1].tenantId }, body: "x" });
  assert.is(foreign.status, 401);
  assert.match(foreign.text, /InvalidIssuer/);
});

Auth("no data role: 403 naming the Send claim and the role; receiving needs Listen", async () => {
  const s = await send("commands", "x", nobody);
  assert.is(s.status, 403);
  assert.match(s.text, /'Send' claim\(s\) are required/);
  assert.match(s.text, /Azure Service Bus Data Sender/);
  const r = await call("POST", "commands/messages/head", { who: nobody });
  assert.is(r.status, 403);
  assert.match(r.text, /'Listen' claim/);
  assert.match(r.text, /Azure Service Bus Data Receiver/);
});

Auth("a role on one queue does not reach another; Sender cannot receive; Receiver cannot send", async () => {
  assert.is((await send("status", "x", sender)).status, 403);
  assert.is((await call("POST", "commands/messages/head", { who: sender })).status, 403);
  assert.is((await send("commands", "x", receiver)).status, 403);
  assert.is((await send("commands", "x", sender)).status, 201);
  assert.is((await call("DELETE", "commands/messages/head", { who: receiver })).status, 200);
});

Auth("Data Owner on the resource group reaches every queue; a missing queue is 410", async () => {
  assert.is((await send("status", "x", owner)).status, 201);
  await drain("status");
  const gone = await send("no-such-queue", "x", owner);
  assert.is(gone.status, 410);
  assert.match(gone.text, /could not be found/);
});

Auth.run();

const Msg = suite("data plane: messages");

Msg("send then peek-lock: body, BrokerProperties, user properties and the lock URI; complete removes it", async () => {
  const s = await send("commands", "{\"op\":\"restart\"}", sender, {
    "content-type": "application/json", BrokerProperties: JSON.stringify({ MessageId: "cmd-1", Label: "restart", CorrelationId: "c-1" }), Priority: "\"high\"", Attempt: "2",
  });
  assert.is(s.status, 201);
  const r = await call("POST", "commands/messages/head?timeout=1", { who: receiver });
  assert.is(r.status, 201);
  assert.is(r.text, "{\"op\":\"restart\"}");
  assert.match(r.headers.get("content-type")!, /application\/json/);
  assert.is(r.broker.MessageId, "cmd-1");
  assert.is(r.broker.Label, "restart");
  assert.is(r.broker.CorrelationId, "c-1");
  assert.is(r.broker.DeliveryCount, 1);
  assert.type(r.broker.SequenceNumber, "number");
  assert.match(r.broker.LockToken, /^[0-9a-f-]{36}$/);
  assert.ok(Date.parse(r.broker.LockedUntilUtc) > Date.now() + 50_000, "locked for the default 60 s");
  assert.is(r.headers.get("priority"), "\"high\"");
  assert.is(r.headers.get("attempt"), "2");
  assert.is(lockPath(r.location!), `/commands/messages/${r.broker.SequenceNumber}/${r.broker.LockToken}`);
  const locked = await queueState("commands");
  assert.is(locked.messages.length, 1);
  assert.ok(locked.messages[0].locked);
  // Header names are case-insensitive, and some clients (Deno's fetch) send them lower-cased.
  const props = Object.fromEntries(Object.entries(locked.messages[0].userProperties).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(props, { priority: "high", attempt: 2 });
  const before = locked.completedCount;
  assert.is((await call("DELETE", lockPath(r.location!), { who: receiver })).status, 200);
  const after = await queueState("commands");
  assert.is(after.messages.length, 0);
  assert.is(after.completedCount, before + 1);
  assert.is((await call("DELETE", lockPath(r.location!), { who: receiver })).status, 404, "a second complete finds no lock");
});

Msg("a locked message is not handed out twice; an empty queue answers 204 at once, or after the timeout", async () => {
  await send("commands", "only", sender);
  const first = await call("POST", "commands/messages/head", { who: receiver });
  assert.is(first.status, 201);
  const t0 = Date.now();
  assert.is((await call("POST", "commands/messages/head", { who: receiver })).status, 204);
  // Far below the shortest long poll a default could mean (real Service Bus waits 60 s), far
  // above what one request takes on a busy machine.
  assert.ok(Date.now() - t0 < 20_000, "no timeout: immediate");
  const t1 = Date.now();
  assert.is((await call("POST", "commands/messages/head?timeout=1", { who: receiver })).status, 204);
  assert.ok(Date.now() - t1 >= 900, "timeout=1 waits about a second");
  await call("DELETE", lockPath(first.location!), { who: receiver });
});

Msg("a long poll returns as soon as a message arrives", async () => {
  const polls = () => sb.obs.counters.servicebus?.["POST /:queue/messages/head"] ?? 0;
  const before = polls();
  const pending = call("POST", "commands/messages/head?timeout=60", { who: receiver });
  // The message is sent once the receive is at the queue, however long getting there took.
  while (polls() === before) await new Promise((r) => setTimeout(r, 10));
  const t0 = Date.now();
  await send("commands", "late", sender);
  const r = await pending;
  assert.is(r.status, 201);
  assert.is(r.text, "late");
  assert.ok(Date.now() - t0 < 30_000, "long before the poll's 60 s");
  await call("DELETE", lockPath(r.location!), { who: receiver });
});

Msg("abandon (PUT on the lock URI) hands the message out again with DeliveryCount + 1", async () => {
  await send("commands", "retry me", sender);
  const a = await call("POST", "commands/messages/head", { who: receiver });
  assert.is((await call("PUT", lockPath(a.location!), { who: receiver })).status, 200);
  const b = await call("POST", "commands/messages/head", { who: receiver });
  assert.is(b.text, "retry me");
  assert.is(b.broker.DeliveryCount, 2);
  assert.is.not(b.broker.LockToken, a.broker.LockToken);
  assert.is((await call("DELETE", lockPath(a.location!), { who: receiver })).status, 404, "the old lock token is dead");
  assert.is((await call("DELETE", lockPath(b.location!), { who: receiver })).status, 200);
});

Msg("a lock expires after the queue's lockDuration (sandbox clock); renew (POST on the lock URI) extends it", async () => {
  await send("short", "slow work", owner);
  const a = await call("POST", "short/messages/head", { who: owner });
  assert.ok(Date.parse(a.broker.LockedUntilUtc) - Date.now() <= 6_000, "PT5S");
  await admin(sb, "POST", "/clock", { offsetMs: 3_000 });
  assert.is((await call("POST", lockPath(a.location!), { who: owner })).status, 200, "renew");
  await admin(sb, "POST", "/clock", { offsetMs: 6_000 });
  assert.is((await call("POST", "short/messages/head", { who: owner })).status, 204, "renewed: still locked 6 s after the first lock");
  await admin(sb, "POST", "/clock", { offsetMs: 20_000 });
  const b = await call("POST", "short/messages/head", { who: owner });
  assert.is(b.status, 201, "lock ran out: available again");
  assert.is(b.broker.DeliveryCount, 2);
  assert.is((await call("DELETE", lockPath(a.location!), { who: owner })).status, 404, "the expired lock cannot complete");
  assert.is((await call("DELETE", lockPath(b.location!), { who: owner })).status, 200);
  await admin(sb, "POST", "/clock", { offsetMs: 0 });
});

Msg("after maxDeliveryCount deliveries (default 10) the message moves to $DeadLetterQueue with its reason", async () => {
  await send("commands", "poison", sender);
  for (let i = 1; i <= 10; i++) {
    const r = await call("POST", "commands/messages/head", { who: receiver });
    assert.is(r.status, 201, `delivery ${i}`);
    assert.is(r.broker.DeliveryCount, i);
    assert.is((await call("PUT", lockPath(r.location!), { who: receiver })).status, 200);
  }
  assert.is((await call("POST", "commands/messages/head", { who: receiver })).status, 204, "not delivered an 11th time");
  const q = await queueState("commands");
  assert.is(q.deadLetters.length, 1);
  assert.is(q.deadLetters[0].deadLetterReason, "MaxDeliveryCountExceeded");
  const d = await call("POST", "commands/$DeadLetterQueue/messages/head", { who: receiver });
  assert.is(d.status, 201);
  assert.is(d.text, "poison");
  assert.is(d.headers.get("deadletterreason"), "\"MaxDeliveryCountExceeded\"");
  assert.match(lockPath(d.location!), /^\/commands\/\$DeadLetterQueue\/messages\//);
  assert.is((await call("DELETE", lockPath(d.location!), { who: receiver })).status, 200);
  assert.is((await queueState("commands")).deadLetters.length, 0);
});

Msg("a queue's own maxDeliveryCount applies (3 on 'short'); expired locks count as deliveries", async () => {
  await send("short", "expires", owner);
  for (let i = 1; i <= 3; i++) {
    const r = await call("POST", "short/messages/head", { who: owner });
    assert.is(r.broker.DeliveryCount, i);
    await admin(sb, "POST", "/clock", { offsetMs: i * 10_000 });
  }
  assert.is((await call("POST", "short/messages/head", { who: owner })).status, 204);
  assert.is((await queueState("short")).deadLetters.length, 1);
  await admin(sb, "POST", "/clock", { offsetMs: 0 });
  await drain("short");
});

Msg("receive-and-delete (DELETE head) returns the message once, with no lock", async () => {
  await send("commands", "fire and forget", sender);
  const r = await call("DELETE", "commands/messages/head", { who: receiver });
  assert.is(r.status, 200);
  assert.is(r.text, "fire and forget");
  assert.is(r.broker.LockToken, undefined);
  assert.is(r.location, undefined);
  assert.is((await call("DELETE", "commands/messages/head", { who: receiver })).status, 204);
});

Msg("batch send (application/vnd.microsoft.servicebus.json) enqueues every item in order", async () => {
  const batch = [
    { Body: "one", BrokerProperties: { Label: "a" }, UserProperties: { n: 1 } },
    { Body: "two", UserProperties: { n: 2, tag: "x" } },
  ];
  const s = await call("POST", "status/messages", { who: owner, body: JSON.stringify(batch), headers: { "content-type": "application/vnd.microsoft.servicebus.json" } });
  assert.is(s.status, 201);
  const q = await queueState("status");
  assert.equal(q.messages.map((m: { body: string }) => m.body), ["one", "two"]);
  assert.equal(q.messages[1].userProperties, { n: 2, tag: "x" });
  assert.is(q.messages[0].label, "a");
  const bad = await call("POST", "status/messages", { who: owner, body: "[]", headers: { "content-type": "application/vnd.microsoft.servicebus.json" } });
  assert.is(bad.status, 400);
  await drain("status");
});

Msg("a lock URI with an unknown token is 404", async () => {
  assert.is((await call("DELETE", `commands/messages/1/${randomUUID()}`, { who: receiver })).status, 404);
});

Msg.after(() => sb.stop());
Msg.run();
