// The static website issuer host, as processes against the sandbox: 0-isv-setup --issuer-host
// static-website deploys a storage account without public blob access, switches its static
// website on and publishes the issuer documents in $web; Entra reads them anonymously at the
// website endpoint (the sandbox's emulation in front of Azurite) and a customer's token exchange
// works with that issuer. Checked against ARM's state, what the endpoints serve anonymously, the
// assertion behind the token Entra issued, and the doctor.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { readAudit, runOk } from "../helpers/workflow.mts";
import { hourBack, hoursAgoOf } from "../helpers/hours.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const readConfig = async () => JSON.parse(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"));
const accounts = () => sb.state.ofType("Microsoft.Storage/storageAccounts");

const S = suite("static website issuer host");

S("the website endpoint answers WebsiteDisabled until the website is switched on", async () => {
  const res = await fetch(`${sb.endpoints.web}/.well-known/openid-configuration`);
  assert.is(res.status, 404);
  assert.is(res.headers.get("x-ms-error-code"), "WebsiteDisabled");
});

S("--issuer-host with a wrong value is a usage error that changes nothing", async () => {
  const r = await runScript("0-isv-setup.mts", ["--issuer-host", "cdn"], { env });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /Cannot use --issuer-host "cdn": expected blob or static-website/);
  assert.is(accounts().length, 0);
});

S("0-isv-setup --issuer-host static-website: no public blob access, documents in $web, the website endpoint is the issuer", async () => {
  await runOk("0-add-defaults.mts", [], env);
  const r = await runScript("0-isv-setup.mts", ["--issuer-host", "static-website"], { env });
  assert.is(r.code, 0, describe(r));
  const [account] = accounts();
  assert.is(account.properties.allowBlobPublicAccess, false, "the account allows no anonymous blob access");
  assert.equal(sb.state.ofType("Microsoft.Storage/storageAccounts/blobServices/containers").length, 0, "no public container");
  const web = String((account.properties.primaryEndpoints as Record<string, string>).web);
  const { idp } = (await readConfig()).publisher;
  assert.is(idp.issuer, web.replace(/\/$/, ""));
  assert.is(idp.issuerHost, "static-website");
  assert.is(idp.blobEndpoint, String((account.properties.primaryEndpoints as Record<string, string>).blob));
  assert.match(r.stdout, /host\s+static website \(\$web\)/);
  // Anonymous, as Entra reads them: served by the website, not by the blob endpoint.
  const discovery = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
  assert.is(discovery.status, 200);
  assert.match(discovery.headers.get("content-type") ?? "", /application\/json/);
  assert.equal((await discovery.json()).jwks_uri, `${idp.issuer}/.well-known/jwks.json`);
  const jwks = await (await fetch(`${idp.issuer}/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys.map((k: { kid: string }) => k.kid), [idp.keys[0].kid]);
  const viaBlob = await fetch(`${idp.blobEndpoint.replace(/\/$/, "")}/$web/.well-known/jwks.json`);
  assert.not.ok(viaBlob.ok, `the blob endpoint refuses anonymous reads of $web (HTTP ${viaBlob.status})`);
  const { records } = await readAudit(env);
  assert.ok(records.some((x) => x.operation === "issuer.staticWebsite" && x.outcome === "succeeded"), "switching the website on is audited");
  assert.ok(records.some((x) => x.operation === "issuer.publish" && x.targets.some((t: string) => t.endsWith("/$web/.well-known/jwks.json"))));
});

S("running it again keeps the host without the flag and changes nothing", async () => {
  const before = await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8");
  const r = await runScript("0-isv-setup.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stderr, /unchanged \.well-known\/jwks\.json/);
  assert.is(await readFile(join(env.METERING_DATA_DIR, "config.json"), "utf8"), before);
});

S("a customer connected to the static-website issuer gets a token and is billed", async () => {
  await runOk("1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup], env);
  const { issuer } = (await readConfig()).publisher.idp;
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(hourBack(1)), customer.dimensions[0], "1"], { env });
  assert.is(r.code, 0, describe(r));
  const tokens = (await admin<Array<{ grant: string; assertion?: { iss: string } }>>(sb, "GET", "/tokens")).filter((t) => t.grant === "client_assertion");
  assert.is(tokens.length, 1);
  assert.is(tokens[0].assertion?.iss, issuer);
  assert.is((await admin<unknown[]>(sb, "GET", "/metering/events")).length, 1);
});

S("the doctor checks the website the same way: every issuer link green", async () => {
  const r = await runScript("doctor.mts", ["--json"], { env });
  const checks = JSON.parse(r.stdout).checks as Array<{ id: string; status: string }>;
  for (const id of ["discovery", "discovery-issuer", "jwks", "jwks-keys", "key-matches-jwks", "test-assertion", "fic", "token"]) {
    const c = checks.find((x) => x.id === id);
    assert.is(c?.status, "ok", JSON.stringify(c ?? id));
  }
});

S("the doctor's fix for an unreachable website names the static website", async () => {
  const { blobEndpoint } = (await readConfig()).publisher.idp;
  const { BlobServiceClient, StorageSharedKeyCredential } = await import("@azure/storage-blob");
  const { AZURITE_ACCOUNT } = await import("../../sandbox/main.mts");
  const service = new BlobServiceClient(blobEndpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
  await service.setProperties({ staticWebsite: { enabled: false } });
  const r = await runScript("doctor.mts", ["--json"], { env });
  assert.is(r.code, 1, describe(r));
  const discovery = (JSON.parse(r.stdout).checks as Array<{ id: string; status: string; fix?: string }>).find((c) => c.id === "discovery")!;
  assert.is(discovery.status, "fail");
  assert.match(discovery.fix ?? "", /static website .*0-isv-setup --issuer-host static-website/);
  await service.setProperties({ staticWebsite: { enabled: true } });
});

S.after(() => sb.stop());
S.run();
