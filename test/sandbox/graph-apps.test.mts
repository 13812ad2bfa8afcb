// The emulated Microsoft Graph's app registrations (docs/azure-behaviour.md §3.6): applications,
// their federated identity credentials with Entra's rules, service principals, as az calls
// them (plain fetch with the ISV user's token); and Entra signing a publisher app in with a
// federated assertion under the same matching rules as a UAMI.
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as jose from "jose";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";

const sb = await startTestSandbox();
const isv = sb.world.isv;
const offerApp = sb.world.offers[0].technicalConfiguration!;
const METERING = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const EXCHANGE_AUD = "api://AzureADTokenExchange";

async function userToken(tenantId = isv.tenantId, audience = "https://graph.microsoft.com"): Promise<string> {
  const { token } = await sb.tokens.issue({ tenantId, audience, objectId: isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test" });
  return token;
}

interface Answer { status: number; json: any; text: string }

async function graph(method: string, path: string, o: { body?: unknown; token?: string } = {}): Promise<Answer> {
  const res = await fetch(`${sb.endpoints.graph}/v1.0${path}`, {
    method,
    headers: { authorization: `Bearer ${o.token ?? await userToken()}`, ...(o.body === undefined ? {} : { "content-type": "application/json" }) },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

const fic = (o: Record<string, unknown> = {}) => ({
  name: `fic-${randomUUID().slice(0, 8)}`, issuer: "https://issuer.example/one", subject: "publisher", audiences: [EXCHANGE_AUD], ...o,
});

// ---------------------------------------------------------------- Graph

const Graph = suite("Microsoft Graph: applications, federated credentials, service principals");

Graph("seeds the offer's technical configuration: its app and service principal in the ISV tenant", async () => {
  const apps = await graph("GET", `/applications?$filter=${encodeURIComponent(`appId eq '${offerApp.appId}'`)}`);
  assert.is(apps.status, 200, apps.text);
  assert.is(apps.json.value.length, 1);
  assert.is(apps.json.value[0].appId, offerApp.appId);
  assert.is(offerApp.tenantId, isv.tenantId);
  const sps = await graph("GET", `/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${offerApp.appId}'`)}`);
  assert.is(sps.json.value.length, 1);
  assert.is(sps.json.value[0].servicePrincipalType, "Application");
  // Another tenant's user sees none of the ISV's apps.
  const other = await graph("GET", `/applications?$filter=${encodeURIComponent(`appId eq '${offerApp.appId}'`)}`, { token: await userToken(sb.world.customers[0].tenantId) });
  assert.equal(other.json.value, []);
});

Graph("creates an app (201, id and appId), finds it by startswith(displayName) and by id", async () => {
  const name = `publisher-${randomUUID().slice(0, 6)}`;
  const created = await graph("POST", "/applications", { body: { displayName: name } });
  assert.is(created.status, 201, created.text);
  assert.ok(created.json.id && created.json.appId && created.json.id !== created.json.appId);
  const found = await graph("GET", `/applications?$filter=${encodeURIComponent(`startswith(displayName,'${name}')`)}`);
  assert.equal(found.json.value.map((a: { id: string }) => a.id), [created.json.id]);
  assert.is((await graph("GET", `/applications/${created.json.id}`)).json.appId, created.json.appId);
  const missing = await graph("GET", `/applications/${randomUUID()}`);
  assert.is(missing.status, 404);
  assert.is(missing.json.error.code, "Request_ResourceNotFound");
  assert.is((await graph("GET", `/applications?$filter=${encodeURIComponent("tags/any(t:t eq 'x')")}`)).status, 400);
  assert.is((await graph("POST", "/applications", { body: { displayName: "" } })).status, 400);
});

Graph("adds, lists, reads (by id or name) and deletes federated credentials; the alternate key works too", async () => {
  const app = (await graph("POST", "/applications", { body: { displayName: "fics" } })).json;
  const body = fic();
  const created = await graph("POST", `/applications/${app.id}/federatedIdentityCredentials`, { body });
  assert.is(created.status, 201, created.text);
  assert.equal({ ...created.json, id: undefined, "@odata.context": undefined }, { ...body, id: undefined, description: null, "@odata.context": undefined });
  const list = await graph("GET", `/applications(appId='${app.appId}')/federatedIdentityCredentials`);
  assert.equal(list.json.value.map((f: { name: string }) => f.name), [body.name]);
  assert.is((await graph("GET", `/applications/${app.id}/federatedIdentityCredentials/${body.name}`)).json.id, created.json.id);
  assert.is((await graph("DELETE", `/applications/${app.id}/federatedIdentityCredentials/${created.json.id}`)).status, 204);
  assert.equal((await graph("GET", `/applications/${app.id}/federatedIdentityCredentials`)).json.value, []);
});

Graph("refuses what Entra refuses: audiences, names, issuer+subject twice, a 21st credential", async () => {
  const app = (await graph("POST", "/applications", { body: { displayName: "rules" } })).json;
  const post = (b: unknown) => graph("POST", `/applications/${app.id}/federatedIdentityCredentials`, { body: b });
  const two = await post(fic({ audiences: [EXCHANGE_AUD, "api://other"] }));
  assert.is(two.status, 400);
  assert.is(two.json.error.message, "Federated identity credentials must have exactly one audience.");
  assert.is((await post(fic({ audiences: [] }))).status, 400);
  assert.is((await post(fic({ name: "-bad" }))).status, 400);
  assert.is((await post(fic({ name: "ab" }))).status, 400);
  assert.is((await post(fic({ subject: "x".repeat(601) }))).status, 400);
  assert.is((await post(fic({ issuer: undefined }))).status, 400);
  assert.is((await post(fic({ issuer: "https://i.example", subject: "s" }))).status, 201);
  const again = await post(fic({ issuer: "https://i.example", subject: "s" }));
  assert.is(again.status, 400);
  assert.match(again.json.error.message, /Issuer and subject combination already exists/);
  const named = fic();
  assert.is((await post(named)).status, 201);
  assert.is((await post({ ...named, subject: "other" })).status, 409);
  for (let i = 3; i <= 20; i++) assert.is((await post(fic({ subject: `s${i}` }))).status, 201, `credential ${i}`);
  const over = await post(fic({ subject: "s21" }));
  assert.is(over.status, 400);
  assert.match(over.json.error.message, /at most 20/);
});

Graph("PATCH updates a credential in place (204, same id) with the create's rules; name is immutable", async () => {
  const app = (await graph("POST", "/applications", { body: { displayName: "patch" } })).json;
  const base = `/applications/${app.id}/federatedIdentityCredentials`;
  const first = (await graph("POST", base, { body: fic({ subject: "old" }) })).json;
  const second = (await graph("POST", base, { body: fic({ subject: "taken" }) })).json;
  const patched = await graph("PATCH", `${base}/${first.id}`, { body: { subject: "new", description: "changed" } });
  assert.is(patched.status, 204, patched.text);
  assert.is(patched.text, "");
  const read = (await graph("GET", `${base}/${first.name}`)).json;
  assert.equal([read.id, read.name, read.issuer, read.subject, read.audiences, read.description], [first.id, first.name, first.issuer, "new", [EXCHANGE_AUD], "changed"]);
  // By the alternate key, and by name.
  assert.is((await graph("PATCH", `/applications(appId='${app.appId}')/federatedIdentityCredentials/${first.name}`, { body: { audiences: ["api://AzureADTokenExchangeUSGov"] } })).status, 204);
  assert.equal((await graph("GET", `${base}/${first.id}`)).json.audiences, ["api://AzureADTokenExchangeUSGov"]);
  // The create's rules, and what only an update can break.
  for (const [b, message] of [
    [{ audiences: [EXCHANGE_AUD, "api://other"] }, /exactly one audience/],
    [{ subject: "" }, /subject is required/],
    [{ issuer: "x".repeat(601) }, /longer than 600/],
    [{ subject: "taken" }, /Issuer and subject combination already exists/],
    [{ name: "renamed" }, /immutable/],
    [{ claimsMatchingExpression: "x" }, /Invalid property/],
  ] as Array<[Record<string, unknown>, RegExp]>) {
    const r = await graph("PATCH", `${base}/${first.id}`, { body: b });
    assert.is(r.status, 400, JSON.stringify(b));
    assert.is(r.json.error.code, "Request_BadRequest");
    assert.match(r.json.error.message, message);
  }
  assert.is((await graph("PATCH", `${base}/${first.id}`, { body: { name: first.name.toUpperCase(), subject: "new" } })).status, 204, "the same name may be sent");
  assert.is((await graph("PATCH", `${base}/${randomUUID()}`, { body: { subject: "x" } })).status, 404);
  assert.is((await graph("GET", `${base}/${second.id}`)).json.subject, "taken");
});

Graph("creates one service principal per app (a second is 409); needs a user token", async () => {
  const app = (await graph("POST", "/applications", { body: { displayName: "sp" } })).json;
  const sp = await graph("POST", "/servicePrincipals", { body: { appId: app.appId } });
  assert.is(sp.status, 201, sp.text);
  assert.is(sp.json.appId, app.appId);
  assert.is((await graph("POST", "/servicePrincipals", { body: { appId: app.appId } })).status, 409);
  assert.is((await graph("POST", "/servicePrincipals", { body: { appId: randomUUID() } })).status, 400);
  const noAuth = await fetch(`${sb.endpoints.graph}/v1.0/applications`);
  assert.is(noAuth.status, 401);
  const { token: appToken } = await sb.tokens.issue({ tenantId: isv.tenantId, audience: "https://graph.microsoft.com", objectId: randomUUID(), appId: randomUUID(), idtyp: "app", lifetimeS: 600, grant: "test" });
  assert.is((await graph("GET", "/applications", { token: appToken })).status, 403);
  const state = await admin<{ applications: Array<{ appId: string }>; servicePrincipals: Array<{ appId: string }> }>(sb, "GET", "/entra/applications");
  assert.ok(state.applications.some((a) => a.appId === app.appId));
  assert.ok(state.servicePrincipals.some((s) => s.appId === app.appId));
});

Graph.run();

// ---------------------------------------------------------------- Entra: an app signs in with a federated assertion

const SignIn = suite("Entra: a publisher app exchanges a federated assertion");
const blobs = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
let key: Awaited<ReturnType<typeof jose.generateKeyPair>>;
const kid = "app-key-1";
let iss = "";

SignIn.before(async () => {
  key = await jose.generateKeyPair("RS256", { extractable: true });
  const container = `iss-${randomUUID().slice(0, 12)}`;
  const cc = blobs.getContainerClient(container);
  await cc.create({ access: "blob" });
  iss = `${sb.endpoints.blob}/${container}`;
  const put = async (name: string, body: string) => await cc.getBlockBlobClient(name).upload(body, Buffer.byteLength(body));
  await put(".well-known/openid-configuration", JSON.stringify({ issuer: iss, jwks_uri: `${iss}/jwks.json`, response_types_supported: ["id_token"], subject_types_supported: ["public"], id_token_signing_alg_values_supported: ["RS256"] }));
  await put("jwks.json", JSON.stringify({ keys: [{ ...await jose.exportJWK(key.publicKey), kid, use: "sig", alg: "RS256" }] }));
});

async function assertion(subject: string): Promise<string> {
  const t = Math.floor(sb.state.now() / 1000);
  return await new jose.SignJWT({ sub: subject }).setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
    .setIssuer(iss).setAudience(EXCHANGE_AUD).setIssuedAt(t).setNotBefore(t).setExpirationTime(t + 600).sign(key.privateKey);
}

async function exchange(clientId: string, subject: string, tenantId = isv.tenantId) {
  const res = await fetch(`${sb.endpoints.entra}/${tenantId}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials", client_id: clientId, scope: `${METERING}/.default`,
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: await assertion(subject),
    }),
  });
  return { status: res.status, body: await res.json() as Record<string, any> };
}

SignIn("a matching credential gives the app's token (appid, oid = its service principal, no xms_mirid)", async () => {
  const app = (await graph("GET", `/applications?$filter=${encodeURIComponent(`appId eq '${offerApp.appId}'`)}`)).json.value[0];
  assert.is((await graph("POST", `/applications/${app.id}/federatedIdentityCredentials`, { body: fic({ issuer: iss, subject: "publisher-app" }) })).status, 201);
  const res = await exchange(offerApp.appId, "publisher-app");
  assert.is(res.status, 200, JSON.stringify(res.body));
  const claims = jose.decodeJwt(res.body.access_token);
  const sp = (await graph("GET", `/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${offerApp.appId}'`)}`)).json.value[0];
  assert.is(claims.appid, offerApp.appId);
  assert.is(claims.oid, sp.id);
  assert.is(claims.tid, isv.tenantId);
  assert.is(claims.aud, METERING);
  assert.is(claims.xms_mirid, undefined);
  const issued = await admin<Array<{ appid: string; grant: string; assertion?: { sub: string } }>>(sb, "GET", "/tokens");
  assert.ok(issued.some((t) => t.appid === offerApp.appId && t.grant === "client_assertion" && t.assertion?.sub === "publisher-app"));
});

SignIn("the same matching rules as a UAMI: exact subject (case-only → 7002138), issuer, tenant", async () => {
  assert.equal((await exchange(offerApp.appId, "Publisher-App")).body.error_codes, [7002138]);
  assert.equal((await exchange(offerApp.appId, "someone-else")).body.error_codes, [700213]);
  // The app lives in the ISV tenant: a customer tenant does not know it.
  assert.equal((await exchange(offerApp.appId, "publisher-app", sb.world.customers[0].tenantId)).body.error_codes, [700016]);
});

SignIn("an app without a service principal in the tenant cannot sign in (7000229)", async () => {
  const app = (await graph("POST", "/applications", { body: { displayName: "no-sp" } })).json;
  await graph("POST", `/applications/${app.id}/federatedIdentityCredentials`, { body: fic({ issuer: iss, subject: "publisher-app" }) });
  const res = await exchange(app.appId, "publisher-app");
  assert.is(res.status, 400);
  assert.equal(res.body.error_codes, [7000229]);
  await graph("POST", "/servicePrincipals", { body: { appId: app.appId } });
  assert.is((await exchange(app.appId, "publisher-app")).status, 200);
});

SignIn.after(() => sb.stop());
SignIn.run();
