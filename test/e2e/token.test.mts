// 3-token against the sandbox: a token of the customer's UAMI for any resource, claims by
// default, the token only with --raw; Entra's record of the issued token; the audit log.
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { connectCustomer, JWT_RE, readAudit } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const cc = await connectCustomer(env, customer);
const args = (resource: string, ...rest: string[]) => [customer.subscriptionId, customer.managedResourceGroup, resource, ...rest];

const T = suite("3-token");

T("prints the claims of a Key Vault token of the customer's UAMI, never the token", async () => {
  const r = await runScript("3-token.mts", args("https://vault.azure.net"), { env });
  assert.is(r.code, 0, describe(r));
  assert.not.match(r.stdout + r.stderr, JWT_RE);
  assert.match(r.stdout, /^aud\s+https:\/\/vault\.azure\.net$/m);
  assert.match(r.stdout, new RegExp(`^appid\\s+${cc.uamiClientId}$`, "m"));
  assert.match(r.stdout, new RegExp(`^tid\\s+${customer.tenantId}$`, "m"));
  assert.match(r.stdout, /^expires\s+\d{4}-.*\(in \d+ min\)$/m);
  const issued = await admin<Array<{ aud: string; appid: string; grant: string; tenantId: string }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.aud === "https://vault.azure.net" && t.appid === cc.uamiClientId && t.grant === "client_assertion" && t.tenantId === customer.tenantId));
});

T("--raw prints only the token: one line that verifies against the customer tenant's keys", async () => {
  const r = await runScript("3-token.mts", args("servicebus", "--raw"), { env });
  assert.is(r.code, 0, describe(r));
  const lines = r.stdout.trim().split("\n");
  assert.is(lines.length, 1);
  const jwks = jose.createLocalJWKSet(await (await fetch(`${sb.endpoints.entra}/${customer.tenantId}/discovery/v2.0/keys`)).json());
  const { payload } = await jose.jwtVerify(lines[0], jwks);
  assert.is(String(payload.aud).replace(/\/$/, ""), "https://servicebus.azure.net");
  assert.is(payload.appid, cc.uamiClientId);
  assert.is(payload.xms_mirid, cc.uamiId);
});

T("--json gives scope, claims and expiry; a GUID resource (metering) works", async () => {
  const r = await runScript("3-token.mts", args("20e940b3-4c77-4b0b-9a53-9e16a1b010a7", "--json"), { env });
  assert.is(r.code, 0, describe(r));
  const j = JSON.parse(r.stdout);
  assert.is(j.scope, "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default");
  assert.is(j.claims.aud, "20e940b3-4c77-4b0b-9a53-9e16a1b010a7");
  assert.ok(j.expiresInS > 3600);
});

T("each run is in the audit log with the token's claims and no token", async () => {
  const { text, records } = await readAudit(env);
  assert.not.match(text, JWT_RE);
  const tokens = records.filter((x) => x.operation === "token");
  assert.is(tokens.length, 3);
  assert.is(tokens[0].tokenClaims.appid, cc.uamiClientId);
  assert.is(tokens[0].customer.managedResourceGroup, customer.managedResourceGroup);
});

T("bad input: exit 2 with one clear line and nothing issued", async () => {
  const before = (await admin<unknown[]>(sb, "GET", "/tokens")).length;
  const cases: Array<[string[], RegExp]> = [
    [[customer.subscriptionId, customer.managedResourceGroup], /expected <subscription> <managed-resource-group> <resource-or-scope>/],
    [args("not a resource"), /Cannot use resource/],
    [args("vault.azure.net"), /Cannot use resource/],
    [args("https://vault.azure.net", "--raw", "--nope"), /Unknown option|--nope/],
    [[sb.world.customers[1].subscriptionId, sb.world.customers[1].managedResourceGroup, "arm"], /1-connect-customer/],
  ];
  for (const [a, re] of cases) {
    const r = await runScript("3-token.mts", a, { env });
    assert.is(r.code, 2, `${a.join(" ")}: ${describe(r)}`);
    assert.match(r.stderr, re);
    assert.is(r.stdout, "");
  }
  assert.is((await admin<unknown[]>(sb, "GET", "/tokens")).length, before);
});

T.after(() => sb.stop());
T.run();
