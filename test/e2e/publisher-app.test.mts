// 0-publisher-app against the sandbox: adopts the offer's technical configuration app (or
// creates one), adds the federated credential through Graph as the signed-in user, records
// publisher.app and proves it with a token exchange in the ISV tenant; idempotent; the doctor
// checks it like a customer UAMI. Checked in the sandbox's directory and token log, not only output.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { readAudit, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const isv = sb.world.isv;
const offerApp = sb.world.offers[0].technicalConfiguration!;
const [fabrikam] = sb.world.customers;
const METERING = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

interface DirApp { id: string; appId: string; displayName: string; tenantId: string; fics: Array<{ name: string; issuer: string; subject: string; audiences: string[] }> }
const directory = () => admin<{ applications: DirApp[]; servicePrincipals: Array<{ appId: string; tenantId: string }> }>(sb, "GET", "/entra/applications");
const config = async () => JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"));
const tokens = () => admin<Array<{ tenantId: string; aud: string; appid: string; grant: string; assertion?: { iss: string; sub: string; kid: string } }>>(sb, "GET", "/tokens");
const graphWrites = async () => {
  const counters = (await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests")).graph ?? {};
  return Object.entries(counters).filter(([route]) => !route.startsWith("GET ")).reduce((n, [, c]) => n + c, 0);
};

const P = suite("0-publisher-app");

P.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
  await runOk("1-connect-customer.mts", [fabrikam.subscriptionId, fabrikam.managedResourceGroup], env);
});

P("refuses bad input before anything is written: both options, a non-GUID, an unknown app", async () => {
  await admin(sb, "DELETE", "/requests");
  const both = await runScript("0-publisher-app.mts", ["--app-id", offerApp.appId, "--create", "x"], { env });
  assert.is(both.code, 2, describe(both));
  const notGuid = await runScript("0-publisher-app.mts", ["--app-id", "contoso"], { env });
  assert.is(notGuid.code, 2, describe(notGuid));
  assert.match(notGuid.stderr, /expected a GUID/);
  const none = await runScript("0-publisher-app.mts", [], { env });
  assert.is(none.code, 2, describe(none));
  const unknown = await runScript("0-publisher-app.mts", ["--app-id", "00000000-0000-4000-8000-000000000001"], { env });
  assert.is(unknown.code, 2, describe(unknown));
  assert.match(unknown.stderr, /no app registration with app id or object id 00000000-0000-4000-8000-000000000001/);
  assert.is(await graphWrites(), 0);
  assert.is((await config()).publisher.app, undefined);
});

P("--dry-run says what it would add and changes nothing", async () => {
  const r = await runScript("0-publisher-app.mts", ["--app-id", offerApp.appId, "--dry-run", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const doc = JSON.parse(r.stdout);
  assert.ok(doc.actions.some((a: { what: string; done: boolean }) => !a.done && /Adding federated credential/.test(a.what)), r.stdout);
  const app = (await directory()).applications.find((a) => a.appId === offerApp.appId)!;
  assert.equal(app.fics, []);
  assert.is((await config()).publisher.app, undefined);
});

P("adopts the offer's app: adds the federated credential, records publisher.app, proves it in the ISV tenant", async () => {
  const before = (await tokens()).length;
  const r = await runScript("0-publisher-app.mts", ["--app-id", offerApp.appId, "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const cfg = await config();
  const issuer = cfg.publisher.idp.issuer;
  const app = (await directory()).applications.find((a) => a.appId === offerApp.appId)!;
  assert.is(app.fics.length, 1);
  assert.equal([app.fics[0].issuer, app.fics[0].subject, app.fics[0].audiences], [issuer, `metering-submission-via-publisher-app from ${isv.tenantId}`, ["api://AzureADTokenExchange"]]);
  assert.is.not(app.fics[0].subject, cfg.customers[fabrikam.subscriptionId][fabrikam.managedResourceGroup].subject, "a subject of its own");
  assert.equal(
    { tenantId: cfg.publisher.app.tenantId, appId: cfg.publisher.app.appId, objectId: cfg.publisher.app.objectId, subject: cfg.publisher.app.subject, audience: cfg.publisher.app.audience },
    { tenantId: isv.tenantId, appId: offerApp.appId, objectId: app.id, subject: app.fics[0].subject, audience: "api://AzureADTokenExchange" },
  );
  // The proof: one federated exchange for the app in the ISV tenant, signed by the project's key.
  const issued = (await tokens()).slice(before).filter((t) => t.grant === "client_assertion");
  assert.is(issued.length, 1);
  assert.equal([issued[0].tenantId, issued[0].appid, issued[0].aud, issued[0].assertion?.iss, issued[0].assertion?.kid], [isv.tenantId, offerApp.appId, METERING, issuer, cfg.publisher.idp.keyJson.kid]);
  const doc = JSON.parse(r.stdout);
  assert.equal([doc.proof.appid, doc.proof.aud, doc.proof.tenantId], [offerApp.appId, METERING, isv.tenantId]);
  const change = (await readAudit(env)).records.filter((x) => x.operation === "publisherApp.setup");
  assert.is(change.length, 1);
  assert.is(change[0].outcome, "succeeded");
  assert.ok(change[0].targets.some((t: string) => t.includes(`/applications/${app.id}/federatedIdentityCredentials/`)), JSON.stringify(change[0]));
});

P("is idempotent: a second run (without options) writes nothing in Graph and proves again", async () => {
  await admin(sb, "DELETE", "/requests");
  const r = await runScript("0-publisher-app.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, new RegExp(`appId\\s+${offerApp.appId}`));
  assert.is(await graphWrites(), 0);
  assert.is((await directory()).applications.find((a) => a.appId === offerApp.appId)!.fics.length, 1);
});

P("a credential of its name that differs (an earlier setup's subject) is updated in place with Graph's PATCH, never deleted and created", async () => {
  const before = (await directory()).applications.find((a) => a.appId === offerApp.appId)!;
  const [ours] = before.fics;
  // Another setup left the credential with another subject (as `az ad app federated-credential update` would).
  const { token } = await sb.tokens.issue({ tenantId: isv.tenantId, audience: "https://graph.microsoft.com", objectId: isv.userObjectId, idtyp: "user", lifetimeS: 600, grant: "test" });
  const url = `${sb.endpoints.graph}/v1.0/applications/${before.id}/federatedIdentityCredentials/${ours.name}`;
  const edit = await fetch(url, { method: "PATCH", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ subject: "someone else's subject" }) });
  assert.is(edit.status, 204);
  const ficId = async () => (await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).json()).id;
  const id = await ficId();

  await admin(sb, "DELETE", "/requests");
  const dry = await runScript("0-publisher-app.mts", ["--dry-run"], { env });
  assert.is(dry.code, 0, describe(dry));
  assert.match(dry.stderr + dry.stdout, /Updating federated credential marketplace-metering-publisher \(was issuer .*subject "someone else's subject"/);
  assert.is(await graphWrites(), 0, "a dry run writes nothing");

  const tokensBefore = (await tokens()).length;
  const r = await runScript("0-publisher-app.mts", ["--json"], { env });
  assert.is(r.code, 0, describe(r));
  const routes = Object.entries((await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests")).graph ?? {}).filter(([route]) => !route.startsWith("GET "));
  assert.equal(routes.map(([route, n]) => [route.split(" ")[0], n]), [["PATCH", 1]], JSON.stringify(routes));
  const after = (await directory()).applications.find((a) => a.appId === offerApp.appId)!;
  assert.is(after.fics.length, 1);
  assert.equal([await ficId(), after.fics[0].subject], [id, (await config()).publisher.app.subject], "same credential, config's subject");
  assert.ok(Date.now() - Date.parse(JSON.parse(r.stdout).app.ficCreatedAt) < 120_000, "a changed credential gets the propagation retry again");
  // Proven after the update: a token of the app in the ISV tenant.
  const issued = (await tokens()).slice(tokensBefore).filter((t) => t.grant === "client_assertion");
  assert.equal(issued.map((t) => [t.tenantId, t.appid]), [[isv.tenantId, offerApp.appId]]);
});

P("the doctor checks the app like a customer UAMI: exact credential and a working exchange", async () => {
  const ok = await runScript("doctor.mts", ["--json"], { env });
  const checks = JSON.parse(ok.stdout).checks as Array<{ id: string; target: string; status: string; detail: string }>;
  const mine = checks.filter((c) => c.id.startsWith("publisher-app"));
  assert.equal(mine.map((c) => [c.id, c.status]), [["publisher-app-fic", "ok"], ["publisher-app-token", "ok"]], ok.stdout);

  // A subject changed in config (as a hand edit would): both checks fail and say why.
  const cfg = await config();
  const path = join(env.METERING_DATA_DIR, "config.json");
  const { writeFile } = await import("node:fs/promises");
  await writeFile(path, JSON.stringify({ ...cfg, publisher: { ...cfg.publisher, app: { ...cfg.publisher.app, subject: cfg.publisher.app.subject.toUpperCase() } } }, null, 2));
  try {
    const bad = await runScript("doctor.mts", ["--json"], { env });
    assert.is(bad.code, 1, describe(bad));
    const failed = (JSON.parse(bad.stdout).checks as typeof checks).filter((c) => c.id.startsWith("publisher-app"));
    assert.equal(failed.map((c) => [c.id, c.status]), [["publisher-app-fic", "fail"], ["publisher-app-token", "fail"]]);
    assert.match(failed[0].detail, /differs only in case/);
    assert.match(failed[1].detail, /7002138/);
    // The exchange's error names the publisher app and its fix, not a UAMI.
    assert.match(failed[1].detail, new RegExp(`the publisher app ${offerApp.appId} in tenant ${isv.tenantId}: AADSTS7002138: .*publisher app.*0-publisher-app --app-id ${offerApp.appId}`));
    assert.not.match(failed[1].detail, /UAMI|1-connect-customer/);
  } finally {
    await writeFile(path, JSON.stringify(cfg, null, 2));
  }
});

P("--create makes an app with a service principal and the credential; run again it reuses it", async () => {
  const envB = await sandboxEnv(sb);
  await runOk("0-add-defaults.mts", [], envB);
  await runOk("0-isv-setup.mts", [], envB);
  const r = await runScript("0-publisher-app.mts", ["--create", "contoso metering central", "--json"], { env: envB });
  assert.is(r.code, 0, describe(r));
  const { app } = JSON.parse(r.stdout);
  const dir = await directory();
  const created = dir.applications.filter((a) => a.displayName === "contoso metering central");
  assert.is(created.length, 1);
  assert.is(created[0].appId, app.appId);
  assert.is(created[0].tenantId, isv.tenantId);
  assert.ok(dir.servicePrincipals.some((s) => s.appId === app.appId && s.tenantId === isv.tenantId));
  assert.is(created[0].fics.length, 1);
  const again = await runScript("0-publisher-app.mts", ["--create", "contoso metering central"], { env: envB });
  assert.is(again.code, 0, describe(again));
  assert.is((await directory()).applications.filter((a) => a.displayName === "contoso metering central").length, 1);
});

P.after(() => sb.stop());
P.run();
