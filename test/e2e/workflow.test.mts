// The whole workflow, script by script, as processes against the sandbox: each step is checked
// against what the sandbox recorded (published blobs, the FIC on the UAMI, tokens issued, usage
// events accepted) and against the files the scripts wrote.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { hourBack, hoursAgoOf } from "../helpers/hours.mts";

const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const JWT_RE = /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}/;

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const dataDir = env.METERING_DATA_DIR;
const customer = sb.world.customers[0];
const other = sb.world.customers[1];
const configPath = join(dataDir, "config.json");
const auditPath = join(dataDir, "audit.jsonl");
const readConfig = async () => JSON.parse(await readFile(configPath, "utf8"));
const readAudit = async () => (await readFile(auditPath, "utf8").catch(() => "")).split("\n").filter(Boolean).map((l) => JSON.parse(l));
const events = () => admin<Array<Record<string, unknown>>>(sb, "GET", "/metering/events");
const counters = () => admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
const meteringCalls = async () => Object.values((await counters()).metering ?? {}).reduce((a, b) => a + b, 0);
// The hour the emissions below bill, the same for all of them even when the clock's hour turns.
const HOUR = hourBack(1);

const W = suite("workflow");

W("0-add-defaults records the signed-in publisher's subscription and tenant", async () => {
  const r = await runScript("0-add-defaults.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  const cfg = await readConfig();
  assert.is(cfg.publisher.subscriptionId, sb.world.isv.subscriptionId);
  assert.is(cfg.publisher.aadTenantId, sb.world.isv.tenantId);
  assert.ok(cfg.publisher.resourceGroup);
  assert.is((await stat(configPath)).mode & 0o777, 0o600);
});

W("0-isv-setup deploys, publishes anonymous-readable issuer documents and records the issuer", async () => {
  const r = await runScript("0-isv-setup.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  const idp = (await readConfig()).publisher.idp;
  assert.is(idp.issuer, `${sb.endpoints.blob}/public`);
  assert.not.match(idp.issuer, /\/$/);
  // Anonymous: plain fetch, no credentials.
  const disco = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json();
  assert.is(disco.issuer, idp.issuer);
  const jwksRes = await fetch(disco.jwks_uri);
  assert.is(jwksRes.status, 200);
  assert.match(String(jwksRes.headers.get("content-type")), /application\/json/);
  const jwks = await jwksRes.json();
  assert.is(jwks.keys.length, 1);
  const k = jwks.keys[0];
  for (const f of ["kty", "use", "alg", "kid", "n", "e"]) assert.ok(k[f], `JWKS key lacks ${f}`);
  assert.is(k.use, "sig");
  assert.is(k.alg, "RS256");
  assert.not.match(k.n, /[+/=]/);
  // The vault, its key and the Crypto Officer role exist in the sandbox's ARM state.
  const keys = sb.state.ofType("Microsoft.KeyVault/vaults/keys");
  assert.is(keys.length, 1);
  const roles = sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((ra) =>
    String(ra.properties.principalId) === sb.world.isv.userObjectId && /14b46e9e-c2b7-41b4-b07b-48a6ebf60603$/.test(String(ra.properties.roleDefinitionId)));
  assert.is(roles.length, 1);
  const blobRoles = sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((ra) =>
    String(ra.properties.principalId) === sb.world.isv.userObjectId && /ba92f5b4-2d11-453d-a403-e96b0029c9fe$/.test(String(ra.properties.roleDefinitionId)) &&
    /\/containers\/public$/i.test(String(ra.properties.scope)));
  assert.is(blobRoles.length, 1, "Storage Blob Data Contributor on the issuer container");
});

W("0-isv-setup run again changes nothing: same config, same JWKS, no new key version", async () => {
  const cfgBefore = await readFile(configPath, "utf8");
  const idp = JSON.parse(cfgBefore).publisher.idp;
  const jwksBefore = await (await fetch(`${idp.issuer}/.well-known/jwks.json`)).text();
  const keyBefore = JSON.stringify(sb.state.ofType("Microsoft.KeyVault/vaults/keys")[0].properties);
  const r = await runScript("0-isv-setup.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.is(await readFile(configPath, "utf8"), cfgBefore);
  assert.is(await (await fetch(`${idp.issuer}/.well-known/jwks.json`)).text(), jwksBefore);
  assert.is(JSON.stringify(sb.state.ofType("Microsoft.KeyVault/vaults/keys")[0].properties), keyBefore);
});

W("1-list-customers --json lists every seeded managed app, none connected yet", async () => {
  const r = await runScript("1-list-customers.mts", ["--json"], { env });
  assert.is(r.code, 0, describe(r));
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  assert.is(rows.length, sb.world.customers.length);
  for (const c of sb.world.customers) {
    const row = rows.find((x) => JSON.stringify(x).includes(c.managedResourceGroup));
    assert.ok(row, `no row for ${c.managedResourceGroup}`);
    assert.ok(JSON.stringify(row).includes(c.planId));
    assert.ok(JSON.stringify(row).toLowerCase().includes(c.managedAppId.toLowerCase()));
    assert.ok(Object.values(row!).includes(false), "connected should be false");
  }
});

W("1-connect-customer puts a UAMI with an exactly matching FIC into the MRG and records the customer", async () => {
  const r = await runScript("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup], { env });
  assert.is(r.code, 0, describe(r));
  const cfg = await readConfig();
  const cc = cfg.customers[customer.subscriptionId][customer.managedResourceGroup];
  assert.is(cc.tenantId, customer.tenantId);
  assert.is(cc.billing.resourceId, customer.resourceUsageId);
  assert.is(cc.billing.resourceUri.toLowerCase(), customer.managedAppId.toLowerCase());
  assert.is(cc.planName, customer.planId);
  const uami = sb.state.findIdentityByClientId(cc.uamiClientId);
  assert.ok(uami, "UAMI not found in the sandbox");
  assert.ok(uami!.id.toLowerCase().startsWith(`/subscriptions/${customer.subscriptionId}/resourcegroups/${customer.managedResourceGroup}/`.toLowerCase()));
  const fics = sb.state.federatedCredentialsOf(uami!.id);
  assert.is(fics.length, 1);
  assert.is(fics[0].properties.issuer, cfg.publisher.idp.issuer);
  assert.is(fics[0].properties.subject, cc.subject);
  assert.equal(fics[0].properties.audiences, ["api://AzureADTokenExchange"]);
});

W("1-connect-customer again says it is connected and changes nothing", async () => {
  const before = await readFile(configPath, "utf8");
  const resourcesBefore = sb.state.resources.size;
  const r = await runScript("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout + r.stderr, /already connected/i);
  assert.is(await readFile(configPath, "utf8"), before);
  assert.is(sb.state.resources.size, resourcesBefore);
});

W("2-emit-meter: the metering API accepts exactly the event, via a token of the customer's UAMI", async () => {
  const dim = customer.dimensions[0];
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(HOUR), dim, "5"], { env });
  assert.is(r.code, 0, describe(r));
  const evs = await events();
  assert.is(evs.length, 1);
  const ev = evs[0];
  assert.is(ev.resourceId, customer.resourceUsageId);
  assert.is(String(ev.resourceUri).toLowerCase(), customer.managedAppId.toLowerCase());
  assert.is(ev.dimension, dim);
  assert.is(ev.quantity, 5);
  assert.is(ev.planId, customer.planId);
  assert.is(Date.parse(String(ev.effectiveStartTime)), HOUR);
  const cc = (await readConfig()).customers[customer.subscriptionId][customer.managedResourceGroup];
  const tokens = await admin<Array<{ appid?: string; aud: string; tenantId: string; grant: string }>>(sb, "GET", "/tokens");
  const meteringTokens = tokens.filter((t) => t.aud === METERING_AUDIENCE);
  assert.is(meteringTokens.length, 1);
  assert.is(meteringTokens[0].appid, cc.uamiClientId);
  assert.is(meteringTokens[0].tenantId, customer.tenantId);
  assert.is(meteringTokens[0].grant, "client_assertion");
  // The audit log holds the pair and the token's claims, never a token.
  const auditText = await readFile(auditPath, "utf8");
  assert.not.match(auditText, JWT_RE);
  assert.not.match(auditText, /Bearer /);
  const last = (await readAudit()).at(-1)!;
  assert.is(last.response.status, 200);
  assert.is(last.response.body.usageEventId, ev.usageEventId);
  assert.is(last.tokenClaims.appid, cc.uamiClientId);
});

W("2-emit-meter again: the audit log shows it accepted, so nothing is sent and it exits 0", async () => {
  const dim = customer.dimensions[0];
  const callsBefore = await meteringCalls();
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(HOUR), dim, "5"], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /Already accepted/);
  assert.is(await meteringCalls(), callsBefore, "no call to the metering API");
  assert.is((await events()).length, 1);
});

W("2-emit-meter --force: 409 Duplicate with the same quantity prints the original and exits 0", async () => {
  const dim = customer.dimensions[0];
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(HOUR), dim, "5", "--force"], { env });
  assert.is(r.code, 0, describe(r));
  const original = (await events())[0];
  assert.ok(r.stdout.includes(String(original.usageEventId)), "the original usageEventId is printed");
  assert.is((await events()).length, 1);
  assert.is((await readAudit()).at(-1)!.response.status, 409);
});

W("2-emit-meter with another quantity for an accepted hour: Conflict, exit 1, nothing sent or billed twice", async () => {
  const dim = customer.dimensions[0];
  const callsBefore = await meteringCalls();
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(HOUR), dim, "7"], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /already holds quantity 5/);
  assert.is(await meteringCalls(), callsBefore, "the audit log settles it without a call");
  const evs = await events();
  assert.is(evs.length, 1);
  assert.is(evs[0].quantity, 5);
});

W("2-emit-meter --force with another quantity: the API answers Duplicate with the original 5, exit 1", async () => {
  const dim = customer.dimensions[0];
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(HOUR), dim, "7", "--force"], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /quantity 5/);
  assert.is((await readAudit()).at(-1)!.response.status, 409);
  const evs = await events();
  assert.is(evs.length, 1);
  assert.is(evs[0].quantity, 5);
});

W("2-emit-meter --dry-run prints the request and sends nothing", async () => {
  const before = await meteringCalls();
  const tokensBefore = (await admin<unknown[]>(sb, "GET", "/tokens")).length;
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, "2", customer.dimensions[1], "3", "--dry-run"], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, new RegExp(customer.resourceUsageId));
  assert.is(await meteringCalls(), before);
  assert.is((await admin<unknown[]>(sb, "GET", "/tokens")).length, tokensBefore);
});

W("bad input: usage error, exit 2, nothing written and nothing sent", async () => {
  const auditBefore = await readFile(auditPath, "utf8");
  const callsBefore = await meteringCalls();
  const cases: string[][] = [
    ["not-a-guid", customer.managedResourceGroup, "1", "cpu-hours", "1"],
    [customer.subscriptionId, "bad/rg", "1", "cpu-hours", "1"],
    [customer.subscriptionId, customer.managedResourceGroup, "24", "cpu-hours", "1"],
    [customer.subscriptionId, customer.managedResourceGroup, "1.5", "cpu-hours", "1"],
    [customer.subscriptionId, customer.managedResourceGroup, "1", "", "1"],
    [customer.subscriptionId, customer.managedResourceGroup, "1", "cpu-hours", "0"],
    [customer.subscriptionId, customer.managedResourceGroup, "1", "cpu-hours", "NaN"],
    [customer.subscriptionId, customer.managedResourceGroup, "1", "cpu-hours"],
    [customer.subscriptionId, customer.managedResourceGroup, "1", "cpu-hours", "1", "--no-such-flag"],
  ];
  for (const args of cases) {
    const r = await runScript("2-emit-meter.mts", args, { env });
    assert.is(r.code, 2, `${args.join(" ")}: ${describe(r)}`);
    assert.ok(r.stderr.trim().length > 0, "an explanation on stderr");
    assert.not.match(r.stderr, /^\s+at /m, "no stack trace");
  }
  assert.is(await readFile(auditPath, "utf8"), auditBefore);
  assert.is(await meteringCalls(), callsBefore);
});

W("an unknown customer: exit 2 and a hint to run 1-connect-customer", async () => {
  const r = await runScript("2-emit-meter.mts", [other.subscriptionId, other.managedResourceGroup, "1", other.dimensions[0], "1"], { env });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /1-connect-customer/);
});

W("a federation failure names the AADSTS code and a fix (subject differs only in case)", async () => {
  const cc = (await readConfig()).customers[customer.subscriptionId][customer.managedResourceGroup];
  const fic = sb.state.federatedCredentialsOf(sb.state.findIdentityByClientId(cc.uamiClientId)!.id)[0];
  const original = fic.properties.subject;
  fic.properties.subject = String(original).toUpperCase();
  try {
    const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, "3", customer.dimensions[0], "2"], { env });
    assert.is(r.code, 1, describe(r));
    assert.match(r.stderr, /AADSTS7002138/);
    assert.match(r.stderr, /subject/i);
    assert.not.match(r.stderr, JWT_RE);
  } finally {
    fic.properties.subject = original;
  }
});

W("--help of every script exits 0 and prints usage", async () => {
  for (const s of ["0-add-defaults.mts", "0-isv-setup.mts", "1-list-customers.mts", "1-connect-customer.mts", "2-emit-meter.mts"]) {
    const r = await runScript(s, ["--help"], { env });
    assert.is(r.code, 0, `${s}: ${describe(r)}`);
    assert.match(r.stdout, /usage/i);
  }
});

W.after(() => sb.stop());
W.run();
