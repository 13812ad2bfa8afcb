// The admin API and the service framework: world, counters, faults, options, clock.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox({ azurite: false });

const Admin = suite("admin API");

Admin("GET /world lists the ISV and at least three customers with their plans' dimensions", async () => {
  const world = await admin<{ isv: { tenantId: string }; customers: Array<{ dimensions: string[]; managedAppId: string }> }>(sb, "GET", "/world");
  assert.is(world.isv.tenantId, sb.world.isv.tenantId);
  assert.ok(world.customers.length >= 3);
  for (const c of world.customers) {
    assert.ok(c.dimensions.length > 0);
    assert.match(c.managedAppId, /^\/subscriptions\/[0-9a-f-]{36}\/resourceGroups\/[^/]+\/providers\/Microsoft\.Solutions\/applications\/[^/]+$/);
  }
});

Admin("an unknown admin route is a 501, not a silent 200", async () => {
  const res = await fetch(sb.endpoints.admin + "/nope");
  assert.is(res.status, 501);
});

Admin("POST /faults rejects a malformed fault with 400 and a reason", async () => {
  const res = await fetch(sb.endpoints.admin + "/faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ service: "metering", kind: "status" }) });
  assert.is(res.status, 400);
  assert.match(await res.text(), /status/);
});

Admin("a status fault answers once with Retry-After, is counted, then the route behaves again", async () => {
  await admin(sb, "DELETE", "/requests");
  await admin(sb, "POST", "/faults", { service: "admin", route: "/world", kind: "status", status: 429, retryAfter: 7 });
  const first = await fetch(sb.endpoints.admin + "/world");
  assert.is(first.status, 429);
  assert.is(first.headers.get("retry-after"), "7");
  const second = await fetch(sb.endpoints.admin + "/world");
  assert.is(second.status, 200);
  const counters = await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
  assert.is(counters.admin["GET /world"], 2);
});

Admin("a reset fault drops the connection before any response", async () => {
  // Persistent: Deno's fetch retries an idempotent GET once on a reset connection.
  await admin(sb, "POST", "/faults", { service: "admin", route: "/world", kind: "reset", times: -1 });
  try {
    await fetch(sb.endpoints.admin + "/world");
    assert.unreachable("should have failed");
  } catch (err) {
    // Node's fetch raises TypeError("fetch failed"), Deno's a connection error: either way no response.
    assert.not.instance(err, assert.Assertion);
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
});

Admin("PATCH /options changes a switch and refuses unknown keys", async () => {
  const o = await admin<{ entra: { jwksCacheTtlS: number } }>(sb, "PATCH", "/options", { entra: { jwksCacheTtlS: 60 } });
  assert.is(o.entra.jwksCacheTtlS, 60);
  assert.is(sb.state.options.entra.jwksCacheTtlS, 60);
  const res = await fetch(sb.endpoints.admin + "/options", { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify({ entra: { nope: 1 } }) });
  assert.is(res.status, 400);
});

Admin("POST /clock shifts the sandbox clock", async () => {
  const before = sb.state.now();
  await admin(sb, "POST", "/clock", { offsetMs: -3_600_000 });
  assert.ok(before - sb.state.now() > 3_500_000);
  await admin(sb, "POST", "/clock", { offsetMs: 0 });
});

/** The az stand-in's back end, as the az executable calls it. */
async function azJson(...argv: string[]) {
  const r = await admin<{ exitCode: number; stdout: string; stderr: string }>(sb, "POST", "/az", { argv: [...argv, "--output", "json"], cwd: process.cwd() });
  return { ...r, json: r.exitCode === 0 && r.stdout ? JSON.parse(r.stdout) : undefined };
}

Admin("az --subscription finds one subscription as az account list shows them: by id or name, and only where the user holds a role", async () => {
  const [first, second] = sb.world.customers;
  const listed = (await azJson("account", "list")).json as Array<{ id: string; name: string }>;
  for (const c of [first, second]) {
    assert.ok(listed.some((s) => s.id === c.subscriptionId), `${c.subscriptionId} is listed (the plan's authorizations name the user)`);
    const byId = await azJson("account", "show", "--subscription", c.subscriptionId.toUpperCase());
    assert.is(byId.json?.id, c.subscriptionId, byId.stderr);
  }
  const name = listed.find((s) => s.id === first.subscriptionId)!.name;
  assert.is((await azJson("account", "show", "--subscription", name.toUpperCase())).json?.id, first.subscriptionId);
  // Without the authorization, the customer's subscription is not the user's to see.
  const app = sb.state.managedApp(second.managedAppId)!;
  sb.state.putResource({ ...app, properties: { ...app.properties, authorizations: [] } });
  try {
    const hidden = await azJson("account", "show", "--subscription", second.subscriptionId);
    assert.is(hidden.exitCode, 1);
    assert.match(hidden.stderr, /Subscription '.*' not found/);
    assert.not.ok(((await azJson("account", "list")).json as Array<{ id: string }>).some((s) => s.id === second.subscriptionId));
    assert.is((await azJson("account", "show", "--subscription", first.subscriptionId)).json?.id, first.subscriptionId);
  } finally {
    sb.state.putResource(app);
  }
  assert.is((await azJson("account", "show", "--subscription", second.subscriptionId)).json?.id, second.subscriptionId);
});

Admin.after(() => sb.stop());
Admin.run();
