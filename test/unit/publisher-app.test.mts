// setupPublisherApp() with a fake Graph (az rest): the federated credential kept when identical,
// updated in place (PATCH) when the one of its name differs, refused when another credential holds
// the same issuer and subject; a dry run writes nothing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { PUBLISHER_APP_FIC_NAME, publisherAppSubject, setupPublisherApp } from "../../lib/publisher/app.mts";
import type { AzRest } from "../../lib/azure/az.mts";
import type { MeteringConfig } from "../../lib/state/config.mts";

const TENANT = "11111111-1111-4111-8111-111111111111";
const APP = { id: "22222222-2222-4222-8222-222222222222", appId: "33333333-3333-4333-8333-333333333333", displayName: "contoso metering" };
const ISSUER = "https://idp.blob.core.windows.net/public";
const config = { publisher: { aadTenantId: TENANT, idp: { issuer: ISSUER } }, customers: {} } as unknown as MeteringConfig;
type Fic = { id: string; name: string; issuer: string; subject: string; audiences: string[] };

/** A Graph with one app, its service principal and `fics`; records every call. */
function fakeGraph(fics: Fic[]) {
  const calls: Array<{ method: string; url: string; body?: unknown }> = [];
  const rest = (async (o: { method: string; url: string; body?: unknown }) => {
    calls.push({ method: o.method, url: o.url, ...(o.body === undefined ? {} : { body: o.body }) });
    const path = decodeURIComponent(new URL(o.url).pathname + new URL(o.url).search);
    if (o.method === "GET" && path.includes("/applications?$filter=appId eq")) return { value: [APP] };
    if (o.method === "GET" && path.includes("/servicePrincipals?")) return { value: [{ id: "sp-1" }] };
    if (o.method === "GET" && path.endsWith(`/applications/${APP.id}/federatedIdentityCredentials`)) return { value: fics };
    if (o.method === "PATCH") {
      const fic = fics.find((f) => o.url.endsWith(`/${f.id}`))!;
      Object.assign(fic, o.body);
      return undefined;
    }
    if (o.method === "POST") return { id: "new-fic", ...(o.body as object) };
    throw new Error(`unexpected ${o.method} ${o.url}`);
  }) as unknown as AzRest;
  return { rest, calls, writes: () => calls.filter((c) => c.method !== "GET") };
}
const fic = (o: Partial<Fic> = {}): Fic => ({ id: "fic-1", name: PUBLISHER_APP_FIC_NAME, issuer: ISSUER, subject: publisherAppSubject(TENANT), audiences: ["api://AzureADTokenExchange"], ...o });
const NOW = Date.parse("2026-12-02T05:00:00Z");

const S = suite("setupPublisherApp()");

S("an identical credential is kept: nothing written", async () => {
  const g = fakeGraph([fic()]);
  const r = await setupPublisherApp({ config, appId: APP.appId, rest: g.rest, now: () => NOW });
  assert.equal(g.writes(), []);
  assert.is(r.app.ficName, PUBLISHER_APP_FIC_NAME);
  assert.is(r.app.ficCreatedAt, undefined);
});

S("its credential with another subject, issuer or audience is PATCHed in place (same id, no delete, no create)", async () => {
  for (const changed of [{ subject: "old subject" }, { issuer: "https://old.example/public" }, { audiences: ["api://AzureADTokenExchangeUSGov"] }]) {
    const g = fakeGraph([fic(changed)]);
    const r = await setupPublisherApp({ config, appId: APP.appId, rest: g.rest, now: () => NOW });
    assert.equal(g.writes().map((c) => [c.method, c.url.split("/").pop()]), [["PATCH", "fic-1"]], JSON.stringify(changed));
    const body = g.writes()[0].body as Record<string, unknown>;
    assert.equal([body.issuer, body.subject, body.audiences, body.name], [ISSUER, publisherAppSubject(TENANT), ["api://AzureADTokenExchange"], undefined]);
    assert.is(r.app.ficCreatedAt, new Date(NOW).toISOString(), "a changed credential gets the propagation retry");
    assert.match(r.actions.at(-1)!.what, /^Updated federated credential marketplace-metering-publisher \(was /);
    assert.equal(r.targets.at(-1), `https://graph.microsoft.com/v1.0/applications/${APP.id}/federatedIdentityCredentials/fic-1`);
  }
});

S("--dry-run says it would update, and writes nothing", async () => {
  const g = fakeGraph([fic({ subject: "old subject" })]);
  const r = await setupPublisherApp({ config, appId: APP.appId, rest: g.rest, dryRun: true });
  assert.equal(g.writes(), []);
  assert.equal(r.actions.at(-1), { what: r.actions.at(-1)!.what, target: `https://graph.microsoft.com/v1.0/applications/${APP.id}/federatedIdentityCredentials/fic-1`, done: false });
  assert.match(r.actions.at(-1)!.what, /^Updating federated credential/);
});

S("another credential holding the same issuer and subject is refused, naming the delete to run", async () => {
  const g = fakeGraph([fic({ id: "fic-9", name: "by-hand", audiences: ["api://other"] })]);
  try {
    await setupPublisherApp({ config, appId: APP.appId, rest: g.rest });
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /"by-hand" .* one credential per issuer and subject; delete it \(az ad app federated-credential delete --id 3{8}-.* --federated-credential-id fic-9\)/);
  }
  assert.equal(g.writes(), []);
});

S("no credential yet: one is created", async () => {
  const g = fakeGraph([]);
  await setupPublisherApp({ config, appId: APP.appId, rest: g.rest });
  assert.equal(g.writes().map((c) => c.method), ["POST"]);
});

S.run();
