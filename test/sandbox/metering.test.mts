// The emulated Marketplace metering API against docs/azure-behaviour.md §1 (callers and order of checks: §1.7), driven with
// plain fetch: every status with its body, batches, the bearer and caller checks, the protocol
// details, GET /api/usageEvents, the admin record, faults and the 24 h window on a moved clock.
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MESSAGE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/;

const sb = await startTestSandbox({ azurite: false });
const [fabrikam, tailwind] = sb.world.customers;

// ---------------------------------------------------------------- the world the tests bill

interface Identity { id: string; principalId: string; clientId: string; tenantId: string }

interface Customer {
  appId: string;
  resourceUsageId: string;
  planId: string;
  dims: string[];
  subscriptionId: string;
  mrgId: string;
  uami: Identity;
}

function addUami(mrgId: string, tenantId: string, name = `uami-${randomUUID().slice(0, 8)}`): Identity {
  const [, , subscriptionId, , resourceGroup] = mrgId.split("/");
  const id = `${mrgId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  const identity = { id, principalId: randomUUID(), clientId: randomUUID(), tenantId };
  sb.state.putResource({
    id, name, type: "Microsoft.ManagedIdentity/userAssignedIdentities", location: "westeurope", tenantId, subscriptionId, resourceGroup,
    properties: { clientId: identity.clientId, principalId: identity.principalId, tenantId }, createdAtMs: sb.state.now(),
  });
  return identity;
}

/** A metering token of `who`, minted on the sandbox clock as it is now (tests that move the clock mint after moving it). */
async function tokenOf(who: Identity, o: { audience?: string; lifetimeS?: number; xmsMirid?: string } = {}): Promise<string> {
  const { token } = await sb.tokens.issue({
    tenantId: who.tenantId, audience: o.audience ?? METERING_AUDIENCE, objectId: who.principalId, appId: who.clientId,
    idtyp: "app", lifetimeS: o.lifetimeS ?? 86399, grant: "test", extraClaims: { xms_mirid: o.xmsMirid ?? who.id },
  });
  return token;
}

/** The offer's publisher app (its technical configuration), or another app of the ISV tenant. */
const publisherApp = sb.world.offers[0].technicalConfiguration!;
async function appToken(appId = publisherApp.appId, tenantId = publisherApp.tenantId): Promise<string> {
  const { token } = await sb.tokens.issue({
    tenantId, audience: METERING_AUDIENCE, objectId: randomUUID(), appId, idtyp: "app", lifetimeS: 3599, grant: "test",
  });
  return token;
}

/** A seeded customer with a UAMI created after purchase in its MRG. */
function seededCustomer(c: typeof fabrikam): Customer {
  const mrgId = `/subscriptions/${c.subscriptionId}/resourceGroups/${c.managedResourceGroup}`;
  return {
    appId: c.managedAppId, resourceUsageId: c.resourceUsageId, planId: c.planId, dims: c.dimensions,
    subscriptionId: c.subscriptionId, mrgId, uami: addUami(mrgId, c.tenantId),
  };
}

/** A managed app of its own (new subscription, RG, MRG, UAMI) so tests never share a duplicate bucket. */
function freshCustomer(planName = "silver"): Customer {
  const subscriptionId = randomUUID();
  const tenantId = fabrikam.tenantId;
  const suffix = randomUUID().slice(0, 8);
  const rgId = `/subscriptions/${subscriptionId}/resourceGroups/rg-${suffix}`;
  const mrgId = `/subscriptions/${subscriptionId}/resourceGroups/mrg-${suffix}`;
  const appId = `${rgId}/providers/Microsoft.Solutions/applications/app-${suffix}`;
  const resourceUsageId = randomUUID();
  const base = { tenantId, subscriptionId, location: "westeurope", createdAtMs: sb.state.now() };
  sb.state.putResource({ ...base, id: mrgId, name: `mrg-${suffix}`, type: "Microsoft.Resources/resourceGroups", managedBy: appId, properties: { provisioningState: "Succeeded" } });
  sb.state.putResource({
    ...base, id: appId, name: `app-${suffix}`, type: "Microsoft.Solutions/applications", kind: "MarketPlace", resourceGroup: `rg-${suffix}`,
    plan: { name: planName, publisher: "contoso-isv", product: "metered-analytics", version: "1.0.0", promotionCode: "" },
    identity: { type: "SystemAssigned", principalId: randomUUID(), tenantId },
    properties: { managedResourceGroupId: mrgId, provisioningState: "Succeeded", billingDetails: { resourceUsageId } },
  });
  return {
    appId, resourceUsageId, planId: planName, dims: sb.state.dimensionsOf("metered-analytics", planName)!,
    subscriptionId, mrgId, uami: addUami(mrgId, tenantId),
  };
}

// ---------------------------------------------------------------- time and requests

/** An instant `hoursAgo` whole UTC hours before the current one, plus `minutes`: inside the 24 h window, in a known hour. */
function at(hoursAgo: number, minutes = 0, nowMs = sb.state.now()): string {
  return new Date((Math.floor(nowMs / HOUR_MS) - hoursAgo) * HOUR_MS + minutes * 60_000).toISOString();
}

type EventBody = Record<string, unknown>;

function usage(c: Customer, over: EventBody = {}): EventBody {
  return { resourceId: c.resourceUsageId, resourceUri: c.appId, planId: c.planId, dimension: c.dims[0], quantity: 1, effectiveStartTime: at(2), ...over };
}

interface Answer { status: number; headers: Headers; text: string; json: any }

async function call(method: string, path: string, o: { token?: string; body?: unknown; apiVersion?: string | null; headers?: Record<string, string>; query?: Record<string, string> } = {}): Promise<Answer> {
  const url = new URL(sb.endpoints.metering + path);
  if (o.apiVersion !== null) url.searchParams.set("api-version", o.apiVersion ?? "2018-08-31");
  for (const [k, v] of Object.entries(o.query ?? {})) url.searchParams.set(k, v);
  const res = await fetch(url, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { "content-type": "application/json" } : {}),
      ...o.headers,
    },
    body: o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const single = async (c: Customer, body: unknown, token?: string) => call("POST", "/api/usageEvent", { token: token ?? await tokenOf(c.uami), body });
const batch = async (c: Customer, items: unknown[], token?: string) => call("POST", "/api/batchUsageEvent", { token: token ?? await tokenOf(c.uami), body: { request: items } });

function badArgument(message: string, target: string) {
  return { message: "One or more errors have occurred.", target: "usageEventRequest", code: "BadArgument", details: [{ message, target, code: "BadArgument" }] };
}

const NOT_FOUND = badArgument("The resourceId value provided cannot be found or this resource is not active.", "resourceId");
const EXPIRED = badArgument("The effective time provided is has expired or is in future.", "effectiveStartTime");
const BAD_DIMENSION = badArgument("The payload dimension is invalid.", "dimension");
const ID_REQUIRED = badArgument("The resourceId is required.", "ResourceId");
const DUPLICATE_TEXT = "This usage event already exist.";

async function acceptedEvents(): Promise<Array<Record<string, unknown>>> {
  return await admin(sb, "GET", "/metering/events");
}

/** Moves the sandbox clock so that it reads `targetMs` now (time only moves forward from there). */
async function setClock(targetMs: number): Promise<void> {
  await admin(sb, "POST", "/clock", { offsetMs: targetMs - Date.now() });
}

// ================================================================ POST /api/usageEvent

const Single = suite("POST /api/usageEvent");

Single("accepts an event of a UAMI made after purchase: 200, both ids, 7-digit messageTime, time and quantity as sent", async () => {
  const c = seededCustomer(fabrikam);
  const effectiveStartTime = at(3, 7).replace(/\.\d{3}Z$/, ".1234567Z");
  const res = await single(c, { resourceUri: c.appId, planId: c.planId, dimension: c.dims[0], quantity: 20.5, effectiveStartTime });
  assert.is(res.status, 200, res.text);
  assert.equal(Object.keys(res.json), ["usageEventId", "status", "messageTime", "resourceId", "resourceUri", "quantity", "dimension", "effectiveStartTime", "planId"]);
  assert.match(res.json.usageEventId, GUID_RE);
  assert.is(res.json.status, "Accepted");
  assert.match(res.json.messageTime, MESSAGE_TIME_RE);
  assert.ok(Math.abs(Date.parse(res.json.messageTime) - sb.state.now()) < 5_000);
  assert.is(res.json.resourceId, c.resourceUsageId);
  assert.is(res.json.resourceUri, c.appId);
  assert.is(res.json.effectiveStartTime, effectiveStartTime);
  assert.is(res.json.planId, c.planId);
  assert.is(res.json.dimension, c.dims[0]);
  assert.ok(res.text.includes('"quantity":20.5'), res.text);
  assert.is(res.headers.get("content-type"), "application/json; charset=utf-8");
});

Single("fills in resourceUri when only resourceId is sent, and matches resourceUri case-insensitively", async () => {
  const c = freshCustomer();
  const byId = await single(c, usage(c, { resourceUri: undefined, dimension: c.dims[0] }));
  assert.is(byId.status, 200, byId.text);
  assert.is(byId.json.resourceUri, c.appId);
  const byUri = await single(c, usage(c, { resourceId: undefined, resourceUri: c.appId.toLowerCase(), dimension: c.dims[1] }));
  assert.is(byUri.status, 200, byUri.text);
  assert.is(byUri.json.resourceId, c.resourceUsageId);
});

Single("writes an integral quantity as a double (5.0), as the .NET service does", async () => {
  const c = freshCustomer();
  const res = await single(c, usage(c, { quantity: 5 }));
  assert.is(res.status, 200, res.text);
  assert.ok(res.text.includes('"quantity":5.0'), res.text);
});

Single("records the accepted event for the admin API and nothing for a rejected one", async () => {
  const c = freshCustomer();
  const ok = await single(c, usage(c, { quantity: 2.5, effectiveStartTime: at(5, 1) }));
  assert.is(ok.status, 200, ok.text);
  const bad = await single(c, usage(c, { dimension: "no-such-dimension", effectiveStartTime: at(6) }));
  assert.is(bad.status, 400);
  const mine = (await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId);
  assert.equal(mine, [{
    usageEventId: ok.json.usageEventId, resourceId: c.resourceUsageId, resourceUri: c.appId, planId: c.planId,
    dimension: c.dims[0], quantity: 2.5, effectiveStartTime: at(5, 1), messageTime: ok.json.messageTime,
  }]);
});

Single("answers a second event in the same resource, dimension and UTC hour with 409 carrying the original, whatever its quantity", async () => {
  const c = freshCustomer();
  const first = await single(c, usage(c, { quantity: 5, effectiveStartTime: at(4, 10) }));
  assert.is(first.status, 200, first.text);
  const second = await single(c, usage(c, { quantity: 9, effectiveStartTime: at(4, 50) }));
  assert.is(second.status, 409, second.text);
  assert.equal(second.json, {
    additionalInfo: { acceptedMessage: { ...first.json, status: "Duplicate" } },
    message: DUPLICATE_TEXT,
    code: "Conflict",
  });
  assert.ok(second.text.includes('"quantity":5.0'), second.text);
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 1);
});

Single("keys duplicates on resource + dimension + hour: another hour, dimension or resource is accepted", async () => {
  const c = freshCustomer();
  const other = freshCustomer();
  assert.is((await single(c, usage(c, { effectiveStartTime: at(7, 59) }))).status, 200);
  assert.is((await single(c, usage(c, { effectiveStartTime: at(8, 59) }))).status, 200);
  assert.is((await single(c, usage(c, { dimension: c.dims[1], effectiveStartTime: at(7, 30) }))).status, 200);
  assert.is((await single(other, usage(other, { effectiveStartTime: at(7, 30) }))).status, 200);
  assert.is((await single(c, usage(c, { effectiveStartTime: at(7, 0) }))).status, 409);
});

Single("leaves planId out of the duplicate key unless options.metering.dedupeIncludesPlan", async () => {
  const c = freshCustomer("gold");
  const first = await single(c, usage(c, { dimension: "cpu-hours", effectiveStartTime: at(6) }));
  assert.is(first.status, 200, first.text);
  // The customer changes plan within the hour: same resource, dimension and hour, other planId.
  (sb.state.getResource(c.appId)!.plan as { name: string }).name = "silver";
  const moved = { ...c, planId: "silver" };
  const again = await single(moved, usage(moved, { dimension: "cpu-hours", effectiveStartTime: at(6, 20) }));
  assert.is(again.status, 409, again.text);
  assert.is(again.json.additionalInfo.acceptedMessage.planId, "gold");
  try {
    await admin(sb, "PATCH", "/options", { metering: { dedupeIncludesPlan: true } });
    const withPlan = await single(moved, usage(moved, { dimension: "cpu-hours", effectiveStartTime: at(6, 40) }));
    assert.is(withPlan.status, 200, withPlan.text);
  } finally {
    await admin(sb, "PATCH", "/options", { metering: { dedupeIncludesPlan: false } });
  }
});

Single("reads a time without zone as UTC and honours offsets when bucketing by hour", async () => {
  const c = freshCustomer();
  const utc = at(9, 15);
  const zoneless = utc.replace(/\.000Z$/, "");
  const first = await single(c, usage(c, { effectiveStartTime: zoneless }));
  assert.is(first.status, 200, first.text);
  assert.is(first.json.effectiveStartTime, zoneless);
  const sameHourZ = await single(c, usage(c, { effectiveStartTime: at(9, 45) }));
  assert.is(sameHourZ.status, 409);
  // The same instant written in +01:00.
  const plusOne = new Date(Date.parse(utc) + HOUR_MS).toISOString().replace(/\.000Z$/, "+01:00");
  const sameHourOffset = await single(c, usage(c, { effectiveStartTime: plusOne }));
  assert.is(sameHourOffset.status, 409, sameHourOffset.text);
  const nextHourOffset = await single(c, usage(c, { effectiveStartTime: utc.replace(/\.000Z$/, "-01:00") }));
  assert.is(nextHourOffset.status, 200, nextHourOffset.text); // 1 h later than `utc` in UTC
});

Single("rejects an effectiveStartTime more than 24 h old with the Expired body", async () => {
  const c = freshCustomer();
  const res = await single(c, usage(c, { effectiveStartTime: new Date(sb.state.now() - DAY_MS - 60_000).toISOString() }));
  assert.is(res.status, 400);
  assert.equal(res.json, EXPIRED);
});

Single("rejects a future effectiveStartTime with the Expired body", async () => {
  const c = freshCustomer();
  const res = await single(c, usage(c, { effectiveStartTime: new Date(sb.state.now() + 5 * 60_000).toISOString() }));
  assert.is(res.status, 400);
  assert.equal(res.json, EXPIRED);
});

Single("rejects an unknown dimension, a wrongly cased one and one of another plan with InvalidDimension", async () => {
  const c = freshCustomer("silver");
  for (const dimension of ["gpu-hours", "CPU-Hours", "premium-support"]) {
    const res = await single(c, usage(c, { dimension }));
    assert.is(res.status, 400, dimension);
    assert.equal(res.json, BAD_DIMENSION, dimension);
  }
});

Single("rejects a planId other than the app's plan", async () => {
  const c = freshCustomer("silver");
  const res = await single(c, usage(c, { planId: "gold" }));
  assert.is(res.status, 400);
  assert.equal(res.json, badArgument("The payload planId is invalid.", "planId"));
});

Single("rejects a quantity of 0 and a negative one", async () => {
  const c = freshCustomer();
  for (const quantity of [0, -1, -0.5]) {
    const res = await single(c, usage(c, { quantity }));
    assert.is(res.status, 400, String(quantity));
    assert.equal(res.json, badArgument("The quantity is invalid.", "quantity"));
  }
});

Single("answers ResourceNotFound for an unknown resourceId, an MRG id as resourceUri, and a pair naming two apps", async () => {
  const c = freshCustomer();
  const other = freshCustomer();
  const cases = [
    usage(c, { resourceId: randomUUID(), resourceUri: undefined }),
    usage(c, { resourceId: undefined, resourceUri: c.mrgId }),
    usage(c, { resourceId: c.resourceUsageId, resourceUri: other.appId }),
    usage(c, { resourceId: other.resourceUsageId, resourceUri: c.appId }),
  ];
  for (const body of cases) {
    const res = await single(c, body);
    assert.is(res.status, 400, JSON.stringify(body));
    assert.equal(res.json, NOT_FOUND);
  }
});

Single("answers an app that is not provisioned with the ResourceNotFound body", async () => {
  const c = freshCustomer();
  const app = sb.state.getResource(c.appId)!;
  app.properties.provisioningState = "Updating";
  try {
    const res = await single(c, usage(c));
    assert.is(res.status, 400, res.text);
    assert.equal(res.json, NOT_FOUND);
  } finally {
    app.properties.provisioningState = "Succeeded";
  }
  assert.is((await single(c, usage(c))).status, 200);
});

Single("requires resourceId or resourceUri: 'The resourceId is required.'", async () => {
  const c = freshCustomer();
  const res = await single(c, usage(c, { resourceId: undefined, resourceUri: undefined }));
  assert.is(res.status, 400);
  assert.equal(res.json, ID_REQUIRED);
});

Single("answers malformed bodies with 400 BadArgument and a non-JSON content type with 415", async () => {
  const c = freshCustomer();
  const token = await tokenOf(c.uami);
  for (const body of ["{not json", "[]", "42", JSON.stringify(usage(c, { quantity: "5" })), JSON.stringify(usage(c, { effectiveStartTime: "yesterday" })), JSON.stringify(usage(c, { dimension: 7 }))]) {
    const res = await call("POST", "/api/usageEvent", { token, body });
    assert.is(res.status, 400, body);
    assert.is(res.json.code, "BadArgument", body);
    assert.is(res.json.details[0].code, "BadArgument", body);
  }
  const typed = await call("POST", "/api/usageEvent", { token, body: JSON.stringify(usage(c)), headers: { "content-type": "text/plain" } });
  assert.is(typed.status, 415);
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 0);
});

Single.run();

// ================================================================ POST /api/batchUsageEvent

const Batch = suite("POST /api/batchUsageEvent");

Batch("accepts 25 events: 200, count 25, each in the single shape", async () => {
  const c = freshCustomer();
  const items = Array.from({ length: 25 }, (_, i) => usage(c, { dimension: c.dims[i % 3], effectiveStartTime: at(1 + Math.floor(i / 3), 5), quantity: i + 0.5 }));
  const res = await batch(c, items);
  assert.is(res.status, 200, res.text);
  assert.equal(Object.keys(res.json), ["result", "count"]);
  assert.is(res.json.count, 25);
  assert.is(res.json.result.length, 25);
  res.json.result.forEach((r: Record<string, unknown>, i: number) => {
    assert.is(r.status, "Accepted");
    assert.match(String(r.usageEventId), GUID_RE);
    assert.is(r.quantity, i + 0.5);
    assert.is(r.effectiveStartTime, items[i].effectiveStartTime);
  });
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 25);
});

Batch("rejects 26 events and an empty batch with 400 BadArgument and records nothing", async () => {
  const c = freshCustomer();
  const expected = {
    message: "The batch contained more than 25 usage events.", target: "usageEventRequest", code: "BadArgument",
    details: [{ message: "The batch contained more than 25 usage events.", target: "request", code: "BadArgument" }],
  };
  const items = Array.from({ length: 26 }, (_, i) => usage(c, { dimension: c.dims[i % 3], effectiveStartTime: at(1 + Math.floor(i / 3)) }));
  const over = await batch(c, items);
  assert.is(over.status, 400);
  assert.equal(over.json, expected);
  const none = await batch(c, []);
  assert.is(none.status, 400);
  assert.equal(none.json, expected);
  const notArray = await call("POST", "/api/batchUsageEvent", { token: await tokenOf(c.uami), body: { request: usage(c) } });
  assert.is(notArray.status, 400);
  assert.is(notArray.json.code, "BadArgument");
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 0);
});

Batch("answers every status per item in request order, with 200 even for failures", async () => {
  const c = freshCustomer();
  const elsewhere = seededCustomer(tailwind); // an app c's identity may not bill
  const expiredAt = new Date(sb.state.now() - DAY_MS - HOUR_MS).toISOString();
  const unknownId = randomUUID();
  const items = [
    usage(c, { effectiveStartTime: at(2, 10) }),
    usage(c, { dimension: "nope", effectiveStartTime: at(3) }),
    usage(c, { quantity: 0, effectiveStartTime: at(3) }),
    usage(c, { effectiveStartTime: expiredAt }),
    { resourceId: unknownId, planId: c.planId, dimension: c.dims[0], quantity: 1, effectiveStartTime: at(3) },
    usage(c, { quantity: 3, effectiveStartTime: at(2, 40) }),
    usage(c, { resourceId: undefined, resourceUri: undefined, effectiveStartTime: at(4) }),
    usage(elsewhere, { effectiveStartTime: at(3) }),
    usage(c, { planId: "gold", dimension: c.dims[1], effectiveStartTime: at(3) }),
    usage(c, { dimension: c.dims[1], effectiveStartTime: at(2) }),
  ];
  const res = await batch(c, items);
  assert.is(res.status, 200, res.text);
  assert.is(res.json.count, items.length);
  assert.equal(res.json.result.map((r: { status: string }) => r.status), [
    "Accepted", "InvalidDimension", "InvalidQuantity", "Expired", "ResourceNotFound", "Duplicate", "Error",
    "ResourceNotAuthorized", "InvalidDimension", "Accepted",
  ]);
  const [accepted, badDim, , expired, notFound, duplicate, idMissing, notAuthorized] = res.json.result;
  assert.is(accepted.quantity, 1);
  assert.equal(badDim.error, BAD_DIMENSION);
  assert.equal(expired.error, EXPIRED);
  assert.equal(idMissing.error, ID_REQUIRED);
  assert.equal(notAuthorized.error, badArgument("Client is not authorized for this usage resource.", "resourceId"));
  // A failed item: no usageEventId, messageTime now, the fields as sent (only the id that was sent).
  assert.equal(Object.keys(notFound), ["status", "messageTime", "error", "resourceId", "quantity", "dimension", "effectiveStartTime", "planId"]);
  assert.match(notFound.messageTime, MESSAGE_TIME_RE);
  assert.equal(notFound.error, NOT_FOUND);
  assert.is(notFound.resourceId, unknownId);
  assert.is(notFound.effectiveStartTime, at(3));
  // The duplicate carries the original (item 0), status Duplicate, and its own sent values.
  assert.is(duplicate.quantity, 3);
  assert.equal(duplicate.error, { additionalInfo: { acceptedMessage: { ...accepted, status: "Duplicate" } }, message: DUPLICATE_TEXT, code: "Conflict" });
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 2);
});

Batch("marks repeats of one resource, dimension and hour inside a batch Duplicate after the first Accepted", async () => {
  const c = freshCustomer();
  const res = await batch(c, [
    usage(c, { effectiveStartTime: at(3, 0), quantity: 1 }),
    usage(c, { effectiveStartTime: at(3, 30), quantity: 2 }),
    usage(c, { effectiveStartTime: at(4, 30), quantity: 3 }),
    usage(c, { effectiveStartTime: at(3, 59), quantity: 4 }),
  ]);
  assert.is(res.status, 200, res.text);
  assert.equal(res.json.result.map((r: { status: string }) => r.status), ["Accepted", "Duplicate", "Accepted", "Duplicate"]);
  const original = res.json.result[0];
  for (const dup of [res.json.result[1], res.json.result[3]]) {
    assert.is(dup.error.additionalInfo.acceptedMessage.usageEventId, original.usageEventId);
    assert.is(dup.error.additionalInfo.acceptedMessage.quantity, 1);
  }
});

Batch("answers a duplicate of an earlier request per item, never with 409", async () => {
  const c = freshCustomer();
  const first = await single(c, usage(c, { effectiveStartTime: at(5) }));
  assert.is(first.status, 200);
  const res = await batch(c, [usage(c, { effectiveStartTime: at(5, 30), quantity: 8 })]);
  assert.is(res.status, 200);
  assert.is(res.json.result[0].status, "Duplicate");
  assert.equal(res.json.result[0].error.additionalInfo.acceptedMessage, { ...first.json, status: "Duplicate" });
});

Batch("answers an app that is not provisioned with ResourceNotActive", async () => {
  const c = freshCustomer();
  const app = sb.state.getResource(c.appId)!;
  app.properties.provisioningState = "Failed";
  try {
    const res = await batch(c, [usage(c)]);
    assert.is(res.json.result[0].status, "ResourceNotActive");
    assert.equal(res.json.result[0].error, NOT_FOUND);
  } finally {
    app.properties.provisioningState = "Succeeded";
  }
});

Batch("names the generic failure status after options.metering.errorStatusName", async () => {
  const c = freshCustomer();
  try {
    await admin(sb, "PATCH", "/options", { metering: { errorStatusName: "UsageEventError" } });
    const res = await batch(c, [usage(c, { resourceId: undefined, resourceUri: undefined })]);
    assert.is(res.json.result[0].status, "UsageEventError");
  } finally {
    await admin(sb, "PATCH", "/options", { metering: { errorStatusName: "Error" } });
  }
});

Batch("rejects the whole batch when an item cannot be bound (quantity as a string)", async () => {
  const c = freshCustomer();
  const res = await batch(c, [usage(c), usage(c, { dimension: c.dims[1], quantity: "2" })]);
  assert.is(res.status, 400);
  assert.equal(res.json.details[0].target, "request[1].quantity");
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 0);
});

Batch.run();

// ================================================================ bearer and caller

const Auth = suite("metering bearer and caller checks");

Auth("answers 403 with an empty body without a token, on every route", async () => {
  const c = freshCustomer();
  for (const [method, path, body] of [["POST", "/api/usageEvent", usage(c)], ["POST", "/api/batchUsageEvent", { request: [usage(c)] }], ["GET", "/api/usageEvents", undefined]] as const) {
    const res = await call(method, path, { body, query: method === "GET" ? { usageStartDate: "2020-01-01" } : {} });
    assert.is(res.status, 403, path);
    assert.is(res.text, "", path);
    assert.match(res.headers.get("x-ms-requestid") ?? "", GUID_RE);
  }
});

Auth("answers 403 to a token for another audience, a malformed token and an expired one", async () => {
  const c = freshCustomer();
  const tokens = [
    await tokenOf(c.uami, { audience: "https://management.azure.com/" }),
    "not-a-jwt",
    await tokenOf(c.uami, { lifetimeS: -3600 }),
  ];
  for (const token of tokens) {
    const res = await single(c, usage(c), token);
    assert.is(res.status, 403);
    assert.is(res.text, "");
  }
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 0);
});

Auth("refuses a UAMI of another customer's MRG: single 403, batch item ResourceNotAuthorized", async () => {
  const fab = seededCustomer(fabrikam);
  const tail = seededCustomer(tailwind);
  const tailToken = await tokenOf(tail.uami);
  const res = await single(fab, usage(fab, { effectiveStartTime: at(10) }), tailToken);
  assert.is(res.status, 403);
  assert.is(res.text, "");
  const mixed = await batch(tail, [usage(fab, { effectiveStartTime: at(10) }), usage(tail, { dimension: "premium-support", effectiveStartTime: at(10) })], tailToken);
  assert.is(mixed.status, 200);
  assert.equal(mixed.json.result.map((r: { status: string }) => r.status), ["ResourceNotAuthorized", "Accepted"]);
  assert.not.ok(mixed.json.result[0].usageEventId);
});

Auth("refuses an identity outside the MRG (in the customer's own resource group) and the ISV user", async () => {
  const c = seededCustomer(fabrikam);
  const outside = addUami(`/subscriptions/${fabrikam.subscriptionId}/resourceGroups/${fabrikam.resourceGroup}`, fabrikam.tenantId);
  assert.is((await single(c, usage(c, { effectiveStartTime: at(11) }), await tokenOf(outside))).status, 403);
  const { token: userToken } = await sb.tokens.issue({
    tenantId: sb.world.isv.tenantId, audience: METERING_AUDIENCE, objectId: sb.world.isv.userObjectId, idtyp: "user", lifetimeS: 3599, grant: "test",
  });
  assert.is((await single(c, usage(c, { effectiveStartTime: at(11) }), userToken)).status, 403);
});

Auth("accepts the app's own system-assigned identity (a listTokens token)", async () => {
  const c = freshCustomer();
  const app = sb.state.getResource(c.appId)!;
  const system: Identity = { id: c.appId, principalId: String((app.identity as { principalId: string }).principalId), clientId: randomUUID(), tenantId: fabrikam.tenantId };
  const res = await single(c, usage(c), await tokenOf(system, { xmsMirid: c.appId }));
  assert.is(res.status, 200, res.text);
});

Auth("accepts the offer's publisher app for every customer; refuses another app, and the right app id from another tenant", async () => {
  const fab = seededCustomer(fabrikam);
  const tail = seededCustomer(tailwind);
  const token = await appToken();
  assert.is((await single(fab, usage(fab, { effectiveStartTime: at(12) }), token)).status, 200);
  const both = await batch(tail, [usage(fab, { dimension: fab.dims[1], effectiveStartTime: at(12) }), usage(tail, { dimension: "premium-support", effectiveStartTime: at(12) })], token);
  assert.equal(both.json.result.map((r: { status: string }) => r.status), ["Accepted", "Accepted"]);
  for (const other of [await appToken(randomUUID()), await appToken(publisherApp.appId, fabrikam.tenantId)]) {
    const res = await single(fab, usage(fab, { effectiveStartTime: at(13) }), other);
    assert.is(res.status, 403);
    assert.is(res.text, "");
  }
});

Auth.run();

// ================================================================ protocol

const Protocol = suite("metering protocol");

Protocol("answers a missing or other api-version with 400 on every route", async () => {
  const c = freshCustomer();
  const token = await tokenOf(c.uami);
  for (const [method, path] of [["POST", "/api/usageEvent"], ["POST", "/api/batchUsageEvent"], ["GET", "/api/usageEvents"]]) {
    const missing = await call(method, path, { token, apiVersion: null, body: method === "POST" ? {} : undefined });
    assert.is(missing.status, 400, path);
    assert.equal(missing.json, { Error: { Code: "ApiVersionUnspecified", Message: "An API version is required, but was not specified." } });
    const other = await call(method, path, { token, apiVersion: "2019-01-01", body: method === "POST" ? {} : undefined });
    assert.is(other.status, 400, path);
    assert.is(other.json.Error.Code, "UnsupportedApiVersion");
    assert.match(other.json.Error.Message, /does not support the API version '2019-01-01'/);
  }
});

Protocol("echoes x-ms-requestid and x-ms-correlationid, and sends one new GUID for both when neither was sent", async () => {
  const c = freshCustomer();
  const token = await tokenOf(c.uami);
  const [rid, cid] = [randomUUID(), randomUUID()];
  const echoed = await call("POST", "/api/usageEvent", { token, body: usage(c), headers: { "x-ms-requestid": rid, "x-ms-correlationid": cid } });
  assert.is(echoed.headers.get("x-ms-requestid"), rid);
  assert.is(echoed.headers.get("x-ms-correlationid"), cid);
  const fresh = await call("POST", "/api/usageEvent", { token, body: usage(c, { effectiveStartTime: at(4) }) });
  assert.match(fresh.headers.get("x-ms-requestid") ?? "", GUID_RE);
  assert.is(fresh.headers.get("x-ms-correlationid"), fresh.headers.get("x-ms-requestid"));
  assert.is.not(fresh.headers.get("x-ms-requestid"), rid);
  const onlyRequest = await call("GET", "/api/usageEvents", { token, query: { usageStartDate: "2020-01-01" }, headers: { "x-ms-requestid": rid } });
  assert.is(onlyRequest.headers.get("x-ms-requestid"), rid);
  assert.is(onlyRequest.headers.get("x-ms-correlationid"), rid);
});

Protocol("sends the service's response headers on success and on errors", async () => {
  const c = freshCustomer();
  const token = await tokenOf(c.uami);
  const ok = await call("POST", "/api/usageEvent", { token, body: usage(c) });
  const failed = await call("POST", "/api/usageEvent", { token, body: usage(c, { quantity: -1 }) });
  for (const res of [ok, failed]) {
    assert.is(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.is(res.headers.get("x-content-type-options"), "nosniff");
    assert.is(res.headers.get("x-powered-by"), "ASP.NET");
    assert.ok((res.headers.get("x-azure-ref") ?? "").length > 10);
  }
  assert.is(ok.status, 200);
  assert.is(failed.status, 400);
});

Protocol("answers an unknown route with 404 and a known path with the wrong method with 405, never 200", async () => {
  const c = freshCustomer();
  const token = await tokenOf(c.uami);
  const unknown = await call("POST", "/api/usageEvents2", { token, body: usage(c) });
  assert.is(unknown.status, 404);
  assert.is(unknown.json.code, "NotFound");
  const root = await call("GET", "/", { token });
  assert.is(root.status, 404);
  const wrongMethod = await call("GET", "/api/usageEvent", { token });
  assert.is(wrongMethod.status, 405);
  assert.is(wrongMethod.headers.get("allow"), "POST");
});

Protocol("matches routes case-insensitively, as ASP.NET does", async () => {
  const c = freshCustomer();
  const res = await call("POST", "/API/UsageEvent", { token: await tokenOf(c.uami), body: usage(c) });
  assert.is(res.status, 200, res.text);
});

Protocol.run();

// ================================================================ GET /api/usageEvents

const Report = suite("GET /api/usageEvents");

// Two customers billed on two past days through the moved clock: day1 10:00 + 11:00 + 10:30, day2 09:00.
const day1 = Math.floor(Date.now() / DAY_MS) * DAY_MS - 3 * DAY_MS;
const day2 = day1 + DAY_MS;
const iso = (ms: number) => new Date(ms).toISOString();
const dateOnly = (ms: number) => iso(ms).slice(0, 10);
let silver: Customer;
let gold: Customer;

Report.before(async () => {
  silver = freshCustomer("silver");
  gold = freshCustomer("gold");
  try {
    await setClock(day1 + 12 * HOUR_MS);
    const r1 = await batch(silver, [
      usage(silver, { dimension: "cpu-hours", quantity: 2, effectiveStartTime: iso(day1 + 10 * HOUR_MS) }),
      usage(silver, { dimension: "cpu-hours", quantity: 3, effectiveStartTime: iso(day1 + 11 * HOUR_MS) }),
      usage(silver, { dimension: "storage-gb", quantity: 1.5, effectiveStartTime: iso(day1 + 10.5 * HOUR_MS) }),
    ]);
    await setClock(day2 + 12 * HOUR_MS);
    const r2 = await single(silver, usage(silver, { dimension: "cpu-hours", quantity: 4, effectiveStartTime: iso(day2 + 9 * HOUR_MS) }));
    const r3 = await single(gold, usage(gold, { dimension: "premium-support", quantity: 7, effectiveStartTime: iso(day2 + 9 * HOUR_MS) }));
    const statuses = [...r1.json.result.map((r: { status: string }) => r.status), r2.json.status, r3.json.status];
    if (statuses.some((s) => s !== "Accepted")) throw new Error(`setup failed: ${statuses.join(", ")}`);
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
});

async function report(query: Record<string, string>, token?: string): Promise<Answer> {
  return await call("GET", "/api/usageEvents", { token: token ?? await appToken(), query });
}

const row = (c: Customer, day: number, dimension: string, submittedQuantity: number, submittedCount: number) => ({
  usageDate: `${dateOnly(day)}T00:00:00Z`, usageResourceId: c.resourceUsageId, dimension, planId: c.planId, planName: "",
  offerId: "metered-analytics", offerName: "metered-analytics", offerType: "", azureSubscriptionId: c.subscriptionId,
  reconStatus: "Submitted", submittedQuantity, processedQuantity: 0, submittedCount,
});

Report("sums accepted events per day, resource, dimension and plan", async () => {
  const res = await report({ usageStartDate: dateOnly(day1), azureSubscriptionId: silver.subscriptionId });
  assert.is(res.status, 200, res.text);
  assert.equal(res.json, [
    row(silver, day1, "cpu-hours", 5, 2),
    row(silver, day1, "storage-gb", 1.5, 1),
    row(silver, day2, "cpu-hours", 4, 1),
  ]);
  assert.ok(res.text.includes('"processedQuantity":0.0'), res.text);
  assert.ok(res.text.includes('"submittedQuantity":5.0'), res.text);
});

Report("filters by dimension, planId, offerId and reconStatus", async () => {
  const sub = { usageStartDate: dateOnly(day1), azureSubscriptionId: silver.subscriptionId };
  assert.equal((await report({ ...sub, dimension: "storage-gb" })).json, [row(silver, day1, "storage-gb", 1.5, 1)]);
  assert.is((await report({ ...sub, planId: "silver" })).json.length, 3);
  assert.is((await report({ ...sub, planId: "gold" })).json.length, 0);
  assert.is((await report({ ...sub, offerId: "metered-analytics" })).json.length, 3);
  assert.is((await report({ ...sub, offerId: "other-offer" })).json.length, 0);
  assert.is((await report({ ...sub, reconStatus: "Submitted" })).json.length, 3);
  assert.is((await report({ ...sub, reconStatus: "Accepted" })).json.length, 0);
});

Report("takes UsageEndDate (capital U) as inclusive and usageStartDate as the first day", async () => {
  const sub = { azureSubscriptionId: silver.subscriptionId };
  assert.is((await report({ ...sub, usageStartDate: dateOnly(day1), UsageEndDate: dateOnly(day1) })).json.length, 2);
  assert.is((await report({ ...sub, usageStartDate: `${dateOnly(day1)}T15:00`, UsageEndDate: `${dateOnly(day1)}T15:00` })).json.length, 2);
  assert.equal((await report({ ...sub, usageStartDate: dateOnly(day2) })).json, [row(silver, day2, "cpu-hours", 4, 1)]);
  assert.is((await report({ ...sub, usageStartDate: dateOnly(day1 - 2 * DAY_MS), UsageEndDate: dateOnly(day1 - DAY_MS) })).json.length, 0);
});

Report("shows the publisher app the events of every customer of its offer", async () => {
  const res = await report({ usageStartDate: dateOnly(day1), azureSubscriptionId: gold.subscriptionId });
  assert.equal(res.json, [row(gold, day2, "premium-support", 7, 1)]);
});

Report("requires usageStartDate and a valid date", async () => {
  const missing = await report({});
  assert.is(missing.status, 400);
  assert.equal(missing.json, badArgument("The usageStartDate is required.", "usageStartDate"));
  const bad = await report({ usageStartDate: "last tuesday" });
  assert.is(bad.status, 400);
  assert.is(bad.json.details[0].target, "usageStartDate");
  const badStatus = await report({ usageStartDate: dateOnly(day1), reconStatus: "Whatever" });
  assert.is(badStatus.status, 400);
});

Report("refuses every caller but the publisher app: a UAMI that may bill, another app, a stray identity", async () => {
  const stray = addUami(`/subscriptions/${randomUUID()}/resourceGroups/elsewhere`, fabrikam.tenantId);
  for (const token of [await tokenOf(silver.uami), await appToken(randomUUID()), await tokenOf(stray)]) {
    const res = await report({ usageStartDate: dateOnly(day1) }, token);
    assert.is(res.status, 403);
    assert.is(res.text, "");
  }
});

Report("admin overrides make a day disagree: Mismatch, an event missing at Microsoft, a row nobody here sent", async () => {
  const sub = { usageStartDate: dateOnly(day1), UsageEndDate: dateOnly(day1), azureSubscriptionId: silver.subscriptionId };
  try {
    await admin(sb, "POST", "/metering/report-overrides", [
      { usageDate: dateOnly(day1), resourceId: silver.resourceUsageId, dimension: "cpu-hours", reconStatus: "Mismatch", processedQuantity: 4 },
      { usageDate: dateOnly(day1), resourceId: silver.resourceUsageId, dimension: "storage-gb", submittedCount: 0, submittedQuantity: 0 },
      { usageDate: dateOnly(day1), resourceId: silver.resourceUsageId, dimension: "api-calls", submittedCount: 1, submittedQuantity: 9 },
    ]);
    const res = await report(sub);
    assert.equal(res.json, [
      { ...row(silver, day1, "api-calls", 9, 1) },
      { ...row(silver, day1, "cpu-hours", 5, 2), reconStatus: "Mismatch", processedQuantity: 4 },
    ]);
    assert.equal((await report({ ...sub, reconStatus: "Mismatch" })).json.map((r: { dimension: string }) => r.dimension), ["cpu-hours"]);
    // What was accepted is unchanged: the overrides change only what the report says.
    assert.is((await acceptedEvents()).filter((e) => e.resourceId === silver.resourceUsageId && e.dimension === "storage-gb").length, 1);
    const refused = await fetch(`${sb.endpoints.admin}/metering/report-overrides`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ usageDate: "yesterday" }) });
    assert.is(refused.status, 400);
  } finally {
    await admin(sb, "DELETE", "/metering/report-overrides");
  }
  assert.is((await report(sub)).json.length, 2);
});

Report.run();

// ================================================================ faults and the clock

const Faults = suite("metering faults and the 24 h window");

const ROUTES = [
  { method: "POST", route: "/api/usageEvent" },
  { method: "POST", route: "/api/batchUsageEvent" },
  { method: "GET", route: "/api/usageEvents" },
];

async function validRequest(c: Customer, route: string, effectiveStartTime: string): Promise<Answer> {
  const token = await tokenOf(c.uami);
  if (route === "/api/usageEvent") return await call("POST", route, { token, body: usage(c, { effectiveStartTime }) });
  if (route === "/api/batchUsageEvent") return await call("POST", route, { token, body: { request: [usage(c, { dimension: c.dims[1], effectiveStartTime })] } });
  // Only the publisher app reads usage.
  return await call("GET", route, { token: await appToken(), query: { usageStartDate: "2020-01-01" } });
}

Faults("an injected 429 carries Retry-After and a JSON body, a 503 follows, then each route answers normally", async () => {
  const c = freshCustomer();
  try {
    for (const [i, { method, route }] of ROUTES.entries()) {
      await admin(sb, "POST", "/faults", [
        { service: "metering", method, route, kind: "status", status: 429, retryAfter: 5 },
      ]);
      const throttled = await validRequest(c, route, at(2 + i));
      assert.is(throttled.status, 429, route);
      assert.is(throttled.headers.get("retry-after"), "5", route);
      assert.equal(throttled.json, { message: "Rate limit is exceeded. Try again later.", code: "TooManyRequests" });
      assert.match(throttled.headers.get("x-ms-requestid") ?? "", GUID_RE);
      await admin(sb, "POST", "/faults", { service: "metering", method, route, kind: "status", status: 503 });
      const unavailable = await validRequest(c, route, at(2 + i));
      assert.is(unavailable.status, 503, route);
      assert.is(unavailable.json.code, "ServiceUnavailable", route);
      const normal = await validRequest(c, route, at(2 + i));
      assert.is(normal.status, 200, `${route}: ${normal.text}`);
    }
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  // The faulted requests changed nothing: one accepted event per POST route.
  assert.is((await acceptedEvents()).filter((e) => e.resourceId === c.resourceUsageId).length, 2);
});

Faults("an injected 403 has an empty body, like the real refusal", async () => {
  const c = freshCustomer();
  try {
    await admin(sb, "POST", "/faults", { service: "metering", route: "/api/usageEvent", kind: "status", status: 403 });
    const res = await validRequest(c, "/api/usageEvent", at(2));
    assert.is(res.status, 403);
    assert.is(res.text, "");
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
});

// Fixed event times, and the clock set relative to them. Time only moves forward after a
// setClock, so "now = T + 24 h" can only be later at the server, and "T + 24 h - 1 min" stays
// below for as long as one request can take on a busy machine (the exact edges are tested below).
const T = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 2 * DAY_MS + 17 * 60_000;

async function atClock(nowMs: number, c: Customer, effectiveStartTime: string): Promise<Answer> {
  try {
    await setClock(nowMs);
    return await single(c, usage(c, { effectiveStartTime }));
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
}

Faults("accepts an event just under 24 h old and refuses one exactly 24 h old", async () => {
  const under = await atClock(T + DAY_MS - 60_000, freshCustomer(), iso(T));
  assert.is(under.status, 200, under.text);
  const exactly = await atClock(T + DAY_MS, freshCustomer(), iso(T));
  assert.is(exactly.status, 400, exactly.text);
  assert.equal(exactly.json, EXPIRED);
});

Faults("accepts an event stamped now and refuses one a minute ahead of the clock", async () => {
  const now = await atClock(T, freshCustomer(), iso(T));
  assert.is(now.status, 200, now.text);
  const ahead = await atClock(T - 60_000, freshCustomer(), iso(T));
  assert.is(ahead.status, 400, ahead.text);
  assert.equal(ahead.json, EXPIRED);
});

Faults("draws the window's edges to the millisecond: 0 <= now - t < 24 h", async () => {
  // POST /clock moves a running clock, so the exact edges need it held still: the sandbox runs
  // in this process, and its state's now() is swapped for a frozen one for these four requests.
  const state = sb.state as { now: () => number };
  const running = state.now;
  const status = async (nowMs: number, t: number) => {
    state.now = () => nowMs;
    try {
      const c = freshCustomer();
      return (await single(c, usage(c, { effectiveStartTime: iso(t) }))).status;
    } finally {
      state.now = running;
    }
  };
  assert.is(await status(T + DAY_MS - 1, T), 200);
  assert.is(await status(T + DAY_MS, T), 400);
  assert.is(await status(T, T), 200);
  assert.is(await status(T - 1, T), 400);
});

Faults("tolerates future times within options.metering.futureSkewS", async () => {
  try {
    await admin(sb, "PATCH", "/options", { metering: { futureSkewS: 120 } });
    const ahead = await atClock(T - 60_000, freshCustomer(), iso(T));
    assert.is(ahead.status, 200, ahead.text);
  } finally {
    await admin(sb, "PATCH", "/options", { metering: { futureSkewS: 0 } });
  }
});

Faults.after(() => sb.stop());
Faults.run();
