// The real az (Debian's azure-cli) as the product's federated sign-in does it, through the front:
// `az login --service-principal --federated-token` as a customer's UAMI with a client assertion
// signed by the ISV's key in the sandbox's Key Vault, a metering token, and a usage event sent
// with `az rest` to https://marketplaceapi.microsoft.com. The sandbox's own records (tokens
// issued, events accepted, front traffic) are the proof, not az's output.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { sandboxEnv } from "../helpers/scripts.mts";
import { connectCustomer } from "../helpers/workflow.mts";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { az, azMissing, curlMissing, federatedToken, frontShellEnv, METERING_RESOURCE, run, show, testOrSkip } from "../helpers/realclients.mts";

const FILE = import.meta.filename ?? "az-federated.test.mts";
const missing = azMissing();
const sb = await startTestSandbox();
const customer = sb.world.customers[0];
let cc: Record<string, any> = {};
let pub = { issuer: "", keyId: "", kid: "" };
let env: Record<string, string> = {};
if (!missing) {
  const scriptEnv = await sandboxEnv(sb);
  cc = await connectCustomer(scriptEnv, customer);
  const idp = JSON.parse(await readFile(join(scriptEnv.METERING_DATA_DIR, "config.json"), "utf8")).publisher.idp;
  pub = { issuer: idp.issuer, keyId: idp.keyId, kid: idp.keyJson.kid };
  env = await frontShellEnv(sb);
}

interface Issued { aud: string; appid?: string; tenantId: string; grant: string; assertion?: { iss: string; sub: string; kid: string; jti?: string } }

const T = suite("real az: federated sign-in as a customer's UAMI, metering through the front");

testOrSkip(T, FILE, missing, "az login --service-principal --federated-token: Entra checks the ISV-signed assertion", async () => {
  const before = { ...sb.front!.stats };
  const jwt = await federatedToken(sb, pub, cc.subject);
  const r = await az(env, "login", "--service-principal", "--username", cc.uamiClientId, "--tenant", customer.tenantId,
    "--federated-token", jwt, "--allow-no-subscriptions", "--output", "json");
  assert.is(r.code, 0, show(r));
  assert.ok(sb.front!.stats.tunnels > before.tunnels, "az reached login.microsoftonline.com through the front");
  const accounts = JSON.parse(r.stdout);
  assert.ok(accounts.some((a: { tenantId: string; user: { name: string; type: string } }) =>
    a.tenantId === customer.tenantId && a.user.name === cc.uamiClientId && a.user.type === "servicePrincipal"), r.stdout);
});

testOrSkip(T, FILE, missing, "az account get-access-token --resource <metering>: a token of the UAMI, issued through a client assertion", async () => {
  const r = await az(env, "account", "get-access-token", "--resource", METERING_RESOURCE, "--output", "json");
  assert.is(r.code, 0, show(r));
  const out = JSON.parse(r.stdout);
  assert.is(out.tenant, customer.tenantId);
  const issued = await admin<Issued[]>(sb, "GET", "/tokens");
  const mine = issued.filter((t) => t.appid === cc.uamiClientId && t.aud === METERING_RESOURCE);
  assert.ok(mine.length >= 1, JSON.stringify(issued.slice(-3)));
  assert.is(mine.at(-1)!.grant, "client_assertion");
  const { jti, ...named } = mine.at(-1)!.assertion!;
  assert.equal(named, { iss: pub.issuer, sub: cc.subject, kid: pub.kid });
  assert.type(jti, "string", "the sandbox records the assertion's jti");
});

testOrSkip(T, FILE, missing, "az rest POST https://marketplaceapi.microsoft.com/api/usageEvent: the sandbox accepts the event", async () => {
  const hour = new Date(Math.floor(sb.state.now() / 3_600_000) * 3_600_000 - 3_600_000).toISOString();
  const body = { resourceId: cc.billing.resourceId, planId: cc.planName, dimension: "cpu-hours", quantity: 7, effectiveStartTime: hour };
  const r = await az(env, "rest", "--method", "post", "--url", "https://marketplaceapi.microsoft.com/api/usageEvent?api-version=2018-08-31",
    "--resource", METERING_RESOURCE, "--headers", "Content-Type=application/json", "--body", JSON.stringify(body), "--output", "json");
  assert.is(r.code, 0, show(r));
  const answer = JSON.parse(r.stdout);
  assert.is(answer.status, "Accepted", r.stdout);
  const events = await admin<Array<Record<string, unknown>>>(sb, "GET", "/metering/events");
  const ev = events.find((e) => e.usageEventId === answer.usageEventId);
  assert.ok(ev, JSON.stringify(events));
  assert.is(ev!.quantity, 7);
  assert.is(ev!.dimension, "cpu-hours");
  assert.is(ev!.resourceId, cc.billing.resourceId);
});

// What a bash tool does with curl: the v1 token endpoint (`resource=`) with the ISV-signed
// assertion, then the usage event, both at Azure's own URLs through the front.
testOrSkip(T, FILE, missing ?? curlMissing(), "curl: v1 token endpoint with resource=, then POST /api/usageEvent with that token", async () => {
  const jwt = await federatedToken(sb, pub, cc.subject);
  const tok = await run("curl", ["-sS", "--fail-with-body", `https://login.microsoftonline.com/${customer.tenantId}/oauth2/token`,
    "-d", "grant_type=client_credentials", "-d", `client_id=${cc.uamiClientId}`, "-d", `resource=${METERING_RESOURCE}`,
    "-d", "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "--data-urlencode", `client_assertion=${jwt}`], env);
  assert.is(tok.code, 0, show(tok));
  const t = JSON.parse(tok.stdout);
  assert.is(t.resource, METERING_RESOURCE, tok.stdout);
  assert.is(t.token_type, "Bearer");
  const hour = new Date(Math.floor(sb.state.now() / 3_600_000) * 3_600_000 - 7_200_000).toISOString();
  const body = JSON.stringify({ resourceId: cc.billing.resourceId, planId: cc.planName, dimension: "storage-gb", quantity: 2, effectiveStartTime: hour });
  const ev = await run("curl", ["-sS", "--fail-with-body", "-X", "POST", "https://marketplaceapi.microsoft.com/api/usageEvent?api-version=2018-08-31",
    "-H", `Authorization: Bearer ${t.access_token}`, "-H", "Content-Type: application/json", "-d", body], env);
  assert.is(ev.code, 0, show(ev));
  const answer = JSON.parse(ev.stdout);
  assert.is(answer.status, "Accepted", ev.stdout);
  const events = await admin<Array<Record<string, unknown>>>(sb, "GET", "/metering/events");
  assert.ok(events.some((e) => e.usageEventId === answer.usageEventId && e.dimension === "storage-gb" && e.quantity === 2), JSON.stringify(events));
  const issued = await admin<Issued[]>(sb, "GET", "/tokens");
  assert.ok(issued.some((x) => x.appid === cc.uamiClientId && x.aud === METERING_RESOURCE && x.grant === "client_assertion"));
});

T.after(async () => {
  await sb.stop();
});
T.run();
