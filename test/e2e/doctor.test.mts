// doctor.mts as a process against the sandbox: a healthy setup passes, then each link is broken
// on purpose through the sandbox's own APIs (ARM, Key Vault, Blob) and the doctor must name it
// with a fix and exit 1; after the repair it passes again. The token check's verdict is checked
// against the tokens the sandbox's Entra recorded.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";
import { arm } from "../helpers/arm.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { CLOCK_PRELOAD, describe, runScript, sandboxEnv } from "../helpers/scripts.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const who = [customer.subscriptionId, customer.managedResourceGroup];
const configPath = join(env.METERING_DATA_DIR, "config.json");
const readConfig = async () => JSON.parse(await readFile(configPath, "utf8"));

interface Check { id: string; target: string; status: "ok" | "fail" | "skip"; detail: string; fix?: string }
const doctor = async (args: string[] = []) => {
  const r = await runScript("doctor.mts", [...args, "--json"], { env });
  let report: { ok: boolean; checks: Check[] } = { ok: false, checks: [] };
  try {
    report = JSON.parse(r.stdout);
  } catch {
    assert.unreachable(`doctor printed no JSON: ${describe(r)}`);
  }
  const check = (id: string, target = id.startsWith("key") || ["config", "credential", "discovery", "discovery-issuer", "jwks", "jwks-keys", "test-assertion"].includes(id) ? "publisher" : who.join("/")) => {
    const c = report.checks.find((x) => x.id === id && x.target === target);
    assert.ok(c, `no check ${id} for ${target}: ${r.stdout}`);
    return c!;
  };
  const failed = report.checks.filter((c) => c.status === "fail").map((c) => c.id);
  return { r, report, check, failed };
};

const MI_API = "api-version=2023-01-31";
const ficPath = async () => `${(await readConfig()).customers[customer.subscriptionId][customer.managedResourceGroup].uamiId}/federatedIdentityCredentials/fed`;
const putFic = async (properties: Record<string, unknown>) => {
  const r = await arm(sb, "PUT", `${await ficPath()}?${MI_API}`, { properties });
  assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.json));
};
const ficProps = async () => {
  const cfg = await readConfig();
  const cc = cfg.customers[customer.subscriptionId][customer.managedResourceGroup];
  return { issuer: cfg.publisher.idp.issuer, subject: cc.subject, audiences: [cc.audience] };
};
const containerPath = async () => {
  const p = (await readConfig()).publisher;
  return `/subscriptions/${p.subscriptionId}/resourceGroups/${p.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${p.optional.storageAccountName}/blobServices/default/containers/${p.optional.containerName}?api-version=2025-06-01`;
};
const blobs = () => new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key)).getContainerClient("public");
const overwriteBlob = async (path: string, doc: unknown) => {
  const text = JSON.stringify(doc);
  await blobs().getBlockBlobClient(path).upload(text, text.length, { blobHTTPHeaders: { blobContentType: "application/json" } });
};
const federatedTokens = async () => (await admin<Array<{ grant: string }>>(sb, "GET", "/tokens")).filter((t) => t.grant === "client_assertion").length;

const D = suite("doctor");

D.before(async () => {
  for (const [script, args] of [["0-add-defaults.mts", []], ["0-isv-setup.mts", []], ["1-connect-customer.mts", who], ["2-emit-meter.mts", [...who, "1", customer.dimensions[0], "2"]]] as const) {
    const r = await runScript(script, [...args], { env });
    assert.is(r.code, 0, `${script}: ${describe(r)}`);
  }
});

D("a healthy setup: every link ✓, exit 0, and the token check really exchanged a token", async () => {
  const before = await federatedTokens();
  const { r, report, check } = await doctor();
  assert.is(r.code, 0, describe(r));
  assert.ok(report.ok);
  assert.equal(report.checks.filter((c) => c.status !== "ok"), []);
  for (const id of ["config", "credential", "key-exists", "key-signs", "key-matches-jwks", "discovery", "discovery-issuer", "jwks", "jwks-keys", "test-assertion"]) check(id);
  for (const id of ["customer-config", "uami", "fic", "token", "managed-app", "dimensions"]) check(id);
  assert.match(check("dimensions").detail, new RegExp(`${customer.dimensions[0]} \\(1 accepted\\)`));
  assert.is(await federatedTokens(), before + 1);
  const table = await runScript("doctor.mts", who, { env });
  assert.is(table.code, 0, describe(table));
  assert.match(table.stdout, /^ {2}✓ config\.json complete and valid/m);
  assert.not.match(table.stdout, /✗/);
});

D("subject that differs only in case: ✗ named as such, and the exchange fails with AADSTS7002138", async () => {
  const good = await ficProps();
  await putFic({ ...good, subject: good.subject.toUpperCase() });
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["fic", "token"]);
    assert.match(check("fic").detail, /subject ".*" differs only in case \(AADSTS7002138\)/);
    assert.match(check("fic").fix!, /1-connect-customer .* --force/);
    assert.match(check("token").detail, /AADSTS7002138/);
  } finally {
    await putFic(good);
  }
});

D("issuer with a trailing slash on the federated credential: ✗ named as such (AADSTS700211)", async () => {
  const good = await ficProps();
  await putFic({ ...good, issuer: `${good.issuer}/` });
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["fic", "token"]);
    assert.match(check("fic").detail, /issuer ".*\/" has a trailing slash \(AADSTS700211\)/);
    assert.match(check("token").detail, /AADSTS700211/);
  } finally {
    await putFic(good);
  }
});

D("discovery document whose issuer has a trailing slash: ✗ with the exact difference", async () => {
  const { issuer } = (await readConfig()).publisher.idp;
  const good = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  await overwriteBlob(".well-known/openid-configuration", { ...good, issuer: `${issuer}/` });
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["discovery-issuer", "token"]);
    assert.match(check("discovery-issuer").detail, /has a trailing slash compared with publisher\.idp\.issuer/);
    assert.match(check("token").detail, /AADSTS50166/, "Entra refuses a discovery document naming another issuer");
  } finally {
    await overwriteBlob(".well-known/openid-configuration", good);
  }
});

D("private container: discovery ✗ with the public-access fix; Entra answers 50166", async () => {
  const path = await containerPath();
  assert.is((await arm(sb, "PUT", path, { properties: { publicAccess: "None" } })).status, 200);
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["discovery", "token"]);
    // Azurite answers 403 for an anonymous read of a private container (Azure: 404 ResourceNotFound or 409 PublicAccessNotPermitted).
    assert.match(check("discovery").detail, /HTTP (403|404|409)/);
    assert.match(check("discovery").fix!, /anonymous blob reads/);
    assert.is(check("jwks").status, "skip");
    assert.is(check("test-assertion").status, "skip");
    assert.match(check("token").detail, /AADSTS50166/);
  } finally {
    assert.is((await arm(sb, "PUT", path, { properties: { publicAccess: "Blob" } })).status, 200);
  }
  assert.is((await doctor(who)).r.code, 0);
});

D("JWKS key without use and alg: ✗ naming the missing fields; 0-isv-setup repairs it", async () => {
  const { issuer } = (await readConfig()).publisher.idp;
  const jwks = await (await fetch(`${issuer}/.well-known/jwks.json`)).json();
  await overwriteBlob(".well-known/jwks.json", { keys: jwks.keys.map(({ use: _u, alg: _a, ...k }: Record<string, unknown>) => k) });
  const { r, check, failed } = await doctor(who);
  assert.is(r.code, 1, describe(r));
  assert.equal(failed, ["jwks-keys", "token"]);
  assert.match(check("jwks-keys").detail, /no use, no alg/);
  assert.match(check("token").detail, /AADSTS7000272/, "Entra (strict JWKS) finds no usable key");
  const setup = await runScript("0-isv-setup.mts", [], { env });
  assert.is(setup.code, 0, describe(setup));
  assert.is((await doctor(who)).r.code, 0);
});

D("missing federated credential: ✗ fic, and the exchange fails with AADSTS700211", async () => {
  assert.is((await arm(sb, "DELETE", `${await ficPath()}?${MI_API}`)).status, 200);
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["fic", "token"]);
    assert.match(check("fic").detail, /has no federated credential/);
    assert.match(check("token").detail, /AADSTS700211/);
  } finally {
    await putFic(await ficProps());
  }
});

D("stale config (the UAMI was recreated with a new client id): ✗ uami; 1-connect-customer --force repairs it", async () => {
  const cc = (await readConfig()).customers[customer.subscriptionId][customer.managedResourceGroup];
  const props = await ficProps();
  assert.is((await arm(sb, "DELETE", `${cc.uamiId}?${MI_API}`)).status, 200);
  const created = await arm(sb, "PUT", `${cc.uamiId}?${MI_API}`, { location: "westeurope" });
  assert.is(created.status, 201);
  await putFic(props);
  assert.is.not(created.json.properties.clientId, cc.uamiClientId);
  const { r, check, failed } = await doctor(who);
  assert.is(r.code, 1, describe(r));
  assert.equal(failed, ["uami", "token"]);
  assert.match(check("uami").detail, new RegExp(`config is stale: its clientId is ${created.json.properties.clientId}, config says ${cc.uamiClientId}`));
  assert.match(check("token").detail, /AADSTS700016/);
  const fix = await runScript("1-connect-customer.mts", [...who, "--force"], { env });
  assert.is(fix.code, 0, describe(fix));
  const again = await doctor(who);
  assert.is(again.r.code, 0, describe(again.r));
});

D("stale plan in config: ✗ managed-app names the app's plan", async () => {
  const app = sb.state.getResource(customer.managedAppId)!;
  const plan = app.plan!.name;
  app.plan = { ...app.plan, name: "renamed-plan" };
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["managed-app"]);
    assert.match(check("managed-app").detail, /the plan is "renamed-plan", config planName says/);
  } finally {
    app.plan = { ...app.plan, name: plan };
  }
});

D("disabled key version: ✗ key-exists with the enable hint; signing checks skip or fail", async () => {
  const { keyId } = (await readConfig()).publisher.idp;
  const [, name, version] = new URL(keyId).pathname.split("/").filter(Boolean).slice(0);
  const vault = new URL(keyId).origin;
  const token = (await sb.tokens.issue({ tenantId: sb.world.isv.tenantId, audience: "https://vault.azure.net", objectId: sb.world.isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test" })).token;
  const patch = (enabled: boolean) => fetch(`${vault}/keys/${name}/${version}?api-version=7.4`, {
    method: "PATCH", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ attributes: { enabled } }),
  });
  assert.is((await patch(false)).status, 200);
  try {
    const { r, check, failed } = await doctor(who);
    assert.is(r.code, 1, describe(r));
    assert.equal(failed, ["key-exists", "key-signs"]);
    assert.match(check("key-exists").fix!, /disabled/);
    assert.is(check("test-assertion").status, "skip");
    assert.is(check("token").status, "skip");
  } finally {
    assert.is((await patch(true)).status, 200);
  }
});

D("a dimension the metering API refused: ✗ dimensions", async () => {
  const emit = await runScript("2-emit-meter.mts", [...who, "2", "no-such-dimension", "1"], { env });
  assert.is(emit.code, 1, describe(emit));
  const { r, check, failed } = await doctor(who);
  assert.is(r.code, 1, describe(r));
  assert.equal(failed, ["dimensions"]);
  assert.match(check("dimensions").detail, /"no-such-dimension" \(1x InvalidDimension, last \d+ min ago\)/);
  assert.match(check("dimensions").fix!, /exactly as Partner Center lists them \(case-sensitive/);
  // 2-emit-meter says the same, not the API's raw BadArgument text.
  assert.match(emit.stderr, /Cannot record \d+ no-such-dimension for \S+: BadArgument: the metering API does not know dimension "no-such-dimension" for plan "silver": use the dimension ids of plan "silver" exactly as Partner Center lists them \(case-sensitive/);
  assert.not.match(emit.stderr, /One or more errors have occurred|The payload dimension is invalid/);
});

D("the old typo ages out: once its hour is past the 24-hour window, the doctor is green again", async () => {
  const offsetMs = 25 * 3600_000;
  await admin(sb, "POST", "/clock", { offsetMs });
  try {
    const r = await runScript("doctor.mts", [...who, "--json"], { env: { ...env, METERING_TEST_CLOCK_OFFSET_MS: String(offsetMs) }, preload: [CLOCK_PRELOAD] });
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
    const dims = report.checks.find((c) => c.id === "dimensions")!;
    assert.is(dims.status, "ok", JSON.stringify(dims));
    assert.is(r.code, 0, describe(r));
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
  }
  // Back at the real time the refusal is inside the window again: red, as before.
  assert.equal((await doctor(who)).failed, ["dimensions"]);
});

D("usage errors: one positional, a bad subscription, an unknown customer: exit 2", async () => {
  for (const args of [[customer.subscriptionId], ["not-a-guid", customer.managedResourceGroup], [sb.world.customers[1].subscriptionId, sb.world.customers[1].managedResourceGroup]]) {
    const r = await runScript("doctor.mts", args, { env });
    assert.is(r.code, 2, `${args.join(" ")}: ${describe(r)}`);
    assert.is(r.stdout, "");
  }
});

D("broken config: ✗ config naming the key, nothing else checked", async () => {
  const text = await readFile(configPath, "utf8");
  const cfg = JSON.parse(text);
  cfg.publisher.idp.issuer = `${cfg.publisher.idp.issuer}/`;
  await writeFile(configPath, JSON.stringify(cfg));
  try {
    const { r, report, check } = await doctor();
    assert.is(r.code, 1, describe(r));
    assert.is(report.checks.length, 1);
    assert.match(check("config").detail, /publisher\.idp\.issuer: expected an https URL without trailing slash/);
  } finally {
    await writeFile(configPath, text);
  }
});

D("deleted key (every version): ✗ key-exists says it is gone and how to recover", async () => {
  const { keyUri } = (await readConfig()).publisher.idp;
  const token = (await sb.tokens.issue({ tenantId: sb.world.isv.tenantId, audience: "https://vault.azure.net", objectId: sb.world.isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test" })).token;
  const del = await fetch(`${keyUri}?api-version=7.4`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  assert.is(del.status, 200);
  const { r, check, failed } = await doctor(who);
  assert.is(r.code, 1, describe(r));
  assert.equal(failed, ["key-exists", "key-signs", "dimensions"]);
  assert.match(check("key-exists").detail, /not found/);
  assert.match(check("key-exists").fix!, /recover/);
});

D.after(() => sb.stop());
D.run();
