// Connection faults and body limits of the service framework, seen by a raw client (node:https,
// node:http) on an HTTPS port (metering, TLS) and on a plain-HTTP one (the admin API): `reset`
// cuts the TCP connection before the handler runs, `drop` after it (its side effect stays), and
// neither answers with any HTTP status. An oversized body is a 413 the caller reads; a JSON body
// that is not an object is a 400 on every admin route that takes one. The sandbox runs inside
// this test process, so it runs on the runtime under test.
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const HOUR_MS = 3_600_000;
const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

const sb = await startTestSandbox({ azurite: false });
const [fabrikam] = sb.world.customers;

// ---------------------------------------------------------------- a raw client

interface Exchange {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
  error?: { code?: string; syscall?: string; message: string };
}

/** One request on a connection of its own; resolves with the answer or the network error, never rejects. */
function raw(url: string, o: { method: string; headers?: Record<string, string>; body?: string | Buffer } = { method: "GET" }): Promise<Exchange> {
  const u = new URL(url);
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = send(u, { method: o.method, headers: o.headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on("error", (e: NodeJS.ErrnoException) => resolve({ status: res.statusCode, error: { code: e.code, syscall: e.syscall, message: e.message } }));
    });
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ error: { code: e.code, syscall: e.syscall, message: e.message } }));
    req.end(o.body);
  });
}

const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

// ---------------------------------------------------------------- a metering caller

const uamiName = `uami-${randomUUID().slice(0, 8)}`;
const mrgId = `/subscriptions/${fabrikam.subscriptionId}/resourceGroups/${fabrikam.managedResourceGroup}`;
const uami = { id: `${mrgId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${uamiName}`, principalId: randomUUID(), clientId: randomUUID() };
sb.state.putResource({
  id: uami.id, name: uamiName, type: "Microsoft.ManagedIdentity/userAssignedIdentities", location: "westeurope",
  tenantId: fabrikam.tenantId, subscriptionId: fabrikam.subscriptionId, resourceGroup: fabrikam.managedResourceGroup,
  properties: { clientId: uami.clientId, principalId: uami.principalId, tenantId: fabrikam.tenantId }, createdAtMs: sb.state.now(),
});
const { token } = await sb.tokens.issue({
  tenantId: fabrikam.tenantId, audience: METERING_AUDIENCE, objectId: uami.principalId, appId: uami.clientId,
  idtyp: "app", lifetimeS: 3600, grant: "test", extraClaims: { xms_mirid: uami.id },
});

let nextHour = 1;
/** A valid usage event of fabrikam in an hour no other test of this file bills. */
function usageEvent() {
  const effectiveStartTime = new Date((Math.floor(sb.state.now() / HOUR_MS) - nextHour++) * HOUR_MS).toISOString();
  return { resourceId: fabrikam.resourceUsageId, planId: fabrikam.planId, dimension: fabrikam.dimensions[0], quantity: 3, effectiveStartTime };
}

const postUsage = (event: unknown) =>
  raw(`${sb.endpoints.metering}/api/usageEvent?api-version=2018-08-31`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(event) });

const accepted = async (effectiveStartTime: string) =>
  (await admin<Array<{ resourceId: string; effectiveStartTime: string; quantity: number }>>(sb, "GET", "/metering/events"))
    .filter((e) => e.resourceId === fabrikam.resourceUsageId && e.effectiveStartTime === effectiveStartTime);

/** A network error and nothing else: no status line reached the client. */
function assertCut(x: Exchange, what: string): void {
  assert.is(x.status, undefined, `${what}: the client saw HTTP ${x.status} ${x.body ?? ""}`);
  assert.ok(x.error, `${what}: no error`);
  // Node names a RST `read ECONNRESET`, a connection closed early `socket hang up`; both ECONNRESET.
  assert.is(x.error!.code, "ECONNRESET", `${what}: ${JSON.stringify(x.error)}`);
}

async function withFault<T>(spec: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  await admin(sb, "POST", "/faults", spec);
  try {
    return await fn();
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
}

// ================================================================ reset and drop

const Cut = suite("reset and drop cut the connection");

Cut("reset on HTTPS (metering): a network error, no status, and the event is not recorded", async () => {
  const event = usageEvent();
  const x = await withFault({ service: "metering", route: "/api/usageEvent", kind: "reset" }, () => postUsage(event));
  assertCut(x, "reset");
  assert.equal(await accepted(event.effectiveStartTime), [], "the handler never ran");
});

Cut("drop on HTTPS (metering): a network error, no status, yet the event is accepted and recorded", async () => {
  const event = usageEvent();
  const x = await withFault({ service: "metering", route: "/api/usageEvent", kind: "drop" }, () => postUsage(event));
  assertCut(x, "drop");
  const held = await accepted(event.effectiveStartTime);
  assert.is(held.length, 1, JSON.stringify(held));
  assert.is(held[0].quantity, 3);
  // Sent again, the API answers Duplicate: the first request was processed in full.
  const again = await postUsage(event);
  assert.is(again.status, 409, again.body);
});

Cut("reset on plain HTTP (admin): a network error, no status, and the clock is not moved", async () => {
  const x = await withFault({ service: "admin", route: "/clock", kind: "reset" }, () => raw(`${sb.endpoints.admin}/clock`, { method: "POST", ...json({ offsetMs: 60_000 }) }));
  assertCut(x, "reset");
  assert.is(sb.state.clockOffsetMs, 0);
});

Cut("drop on plain HTTP (admin): a network error, no status, yet the clock is moved", async () => {
  try {
    const x = await withFault({ service: "admin", route: "/clock", kind: "drop" }, () => raw(`${sb.endpoints.admin}/clock`, { method: "POST", ...json({ offsetMs: 60_000 }) }));
    assertCut(x, "drop");
    assert.is(sb.state.clockOffsetMs, 60_000);
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
});

Cut("reset and drop are TCP resets where the client can tell (Node: `read ECONNRESET`; Deno's fetch: connection reset)", async () => {
  for (const kind of ["reset", "drop"]) {
    const event = usageEvent();
    const fault = { service: "metering", route: "/api/usageEvent", kind, times: -1 };
    if (!IS_DENO) {
      // A FIN (the connection closed in order) would be `socket hang up` without a syscall.
      const x = await withFault(fault, () => postUsage(event));
      assertCut(x, kind);
      assert.is(x.error!.syscall, "read", `${kind}: ${JSON.stringify(x.error)}`);
      continue;
    }
    // Deno's node:https reports every early close as `socket hang up`; its fetch names a RST.
    const message = await withFault(fault, async () => {
      try {
        const res = await fetch(`${sb.endpoints.metering}/api/usageEvent?api-version=2018-08-31`, {
          method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(event),
        });
        return `HTTP ${res.status}`;
      } catch (err) {
        const e = err as Error & { cause?: unknown };
        return `${e.message} ${String(e.cause ?? "")}`;
      }
    });
    assert.match(message, /reset by peer|os error 104/i, `${kind}: ${message}`);
  }
});

Cut("after a cut connection the service answers the next request as usual", async () => {
  await withFault({ service: "admin", route: "/world", kind: "reset" }, () => raw(`${sb.endpoints.admin}/world`));
  const x = await raw(`${sb.endpoints.admin}/world`);
  assert.is(x.status, 200, JSON.stringify(x));
  assert.is(JSON.parse(x.body!).isv.tenantId, sb.world.isv.tenantId);
});

Cut.run();

// ================================================================ bodies

const Bodies = suite("request bodies");

const MAX_BODY_BYTES = 8 * 1024 * 1024;

for (const [name, url] of [["HTTPS (metering)", () => `${sb.endpoints.metering}/api/usageEvent?api-version=2018-08-31`], ["plain HTTP (admin)", () => `${sb.endpoints.admin}/faults`]] as const) {
  Bodies(`a body over 8 MiB on ${name} is answered 413 with its error body, and the connection is closed`, async () => {
    const x = await raw(url(), { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.alloc(MAX_BODY_BYTES + 1, 0x20) });
    assert.is(x.status, 413, JSON.stringify(x));
    assert.equal(JSON.parse(x.body!), { error: { code: "RequestEntityTooLarge", message: "The request body is too large." } });
    assert.is(x.headers!.connection, "close");
    // The service is still there.
    assert.is((await raw(`${sb.endpoints.admin}/world`)).status, 200);
  });
}

Bodies("a body of exactly 8 MiB is read", async () => {
  const x = await raw(`${sb.endpoints.admin}/clock`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.alloc(MAX_BODY_BYTES, 0x20) });
  // Whitespace only: the route's own answer, not the limit's.
  assert.is(x.status, 400, JSON.stringify(x));
  assert.match(x.body!, /empty/);
});

const OBJECT_ROUTES: Array<[string, string]> = [["POST", "/faults"], ["PATCH", "/options"], ["POST", "/clock"], ["POST", "/az"]];

for (const [method, path] of OBJECT_ROUTES) {
  Bodies(`${method} ${path} answers a JSON body that is not an object (null, a number, a string${path === "/faults" ? "" : ", an array"}) with 400 and why`, async () => {
    const bodies = ["null", "5", '"text"', ...(path === "/faults" ? ["[null]", "[5]"] : ["[]"])];
    for (const body of bodies) {
      const x = await raw(`${sb.endpoints.admin}${path}`, { method, ...json(body) });
      assert.is(x.status, 400, `${body}: ${JSON.stringify(x)}`);
      const answer = JSON.parse(x.body!);
      assert.is(answer.error.code, "BadRequest", body);
      assert.match(answer.error.message, /JSON object/, `${body}: ${answer.error.message}`);
    }
  });
}

Bodies("POST /faults with one malformed fault among several adds none of them", async () => {
  const x = await raw(`${sb.endpoints.admin}/faults`, { method: "POST", ...json([{ service: "admin", route: "/world", kind: "reset" }, null]) });
  assert.is(x.status, 400, JSON.stringify(x));
  assert.match(JSON.parse(x.body!).error.message, /a fault must be a JSON object, got null/);
  assert.equal(await admin(sb, "GET", "/faults"), []);
});

Bodies("PATCH /options refuses null (or any non-object) for a group of options, and changes nothing", async () => {
  const before = JSON.stringify(sb.state.options);
  for (const value of [null, 5, "x", []]) {
    const x = await raw(`${sb.endpoints.admin}/options`, { method: "PATCH", ...json({ entra: value }) });
    assert.is(x.status, 400, `${JSON.stringify(value)}: ${JSON.stringify(x)}`);
    assert.match(JSON.parse(x.body!).error.message, /'entra'.*object/, String(x.body));
  }
  assert.is(JSON.stringify(sb.state.options), before);
});

Bodies.after(() => sb.stop());
Bodies.run();
