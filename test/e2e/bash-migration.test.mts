// Moving over from the bash tool without an outage, as processes against the sandbox. The world
// is what the bash tool left: its issuer (a public container with its discovery document and its
// JWKS at jwks_uri/keys: the versioned Key Vault key URL as kid, no use, standard-base64 n), a
// customer connected with its subject, and its config.json (the tenant named by a verified
// domain). Entra's JWKS cache is on and lenientJwks admits the bash tool's keys. Then
// 0-add-defaults, 0-isv-setup (migration phase 1) and --rotate-key twice; an emission before,
// between and after each step; zero failed token exchanges, counted from the sandbox's /tokens.
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { KeyClient } from "@azure/keyvault-keys";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";
import { vaultStore } from "../../sandbox/services/keyvault/store.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { armPut, createVault, isvUser, tokenFor } from "../helpers/arm.mts";
import { readAudit } from "../helpers/workflow.mts";
import { hourBack, hoursAgoOf } from "../helpers/hours.mts";

const JWKS_CACHE_S = 60;
// Entra keeps the bash JWKS it fetched first until phase 2 is due (an hour; the scripts before
// take minutes at most); from then on its cache lasts JWKS_CACHE_S, as the waiting time assumes.
const sb = await startTestSandbox({ options: { entra: { jwksCacheTtlS: 3600, lenientJwks: true } } });
const env = await sandboxEnv(sb);
const isv = sb.world.isv;
const customer = sb.world.customers[0];
// A custom verified domain, as the bash tool's sample named its tenant ("geuer-pollmann.de").
const domain = sb.state.tenants.get(isv.tenantId)!.domains.find((d) => !d.endsWith(".onmicrosoft.com"))!;
const configPath = (dir = env.METERING_DATA_DIR) => join(dir, "config.json");
const readConfig = async (dir?: string) => JSON.parse(await readFile(configPath(dir), "utf8"));

// ---- the bash tool's world (what its 0-isv-setup.sh and 1-connect-customer-deployment.sh made)
const RG = "longterm4";
const ACCOUNT = "k53rhogdavblgg";
const rgId = `/subscriptions/${isv.subscriptionId}/resourceGroups/${RG}`;
await armPut(sb, `${rgId}?api-version=2021-04-01`, { location: "westeurope" });
const account = await armPut(sb, `${rgId}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}?api-version=2025-06-01`, {
  location: "westeurope", kind: "StorageV2", sku: { name: "Standard_LRS" }, properties: { accessTier: "Cool", allowSharedKeyAccess: true, allowBlobPublicAccess: true },
});
await armPut(sb, `${account.id}/blobServices/default/containers/public?api-version=2025-06-01`, { properties: { publicAccess: "Blob" } });
const vault = await createVault(sb, rgId, ACCOUNT, isv.tenantId);
await armPut(sb, `${vault.id}/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?api-version=2022-04-01`, {
  properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultCryptoOfficer}`, principalId: isv.userObjectId, principalType: "User" },
});
const keyResource = await armPut(sb, `${vault.id}/keys/idpkey?api-version=2023-07-01`, { properties: { kty: "RSA", keySize: 2048, keyOps: ["sign"] } });
const vaultCredential = {
  getToken: async () => ({ token: await tokenFor(sb, isvUser(sb), "https://vault.azure.net"), expiresOnTimestamp: Date.now() + 3_600_000 }),
};
const kvKey = await new KeyClient(vault.uri, vaultCredential, { disableChallengeResourceVerification: true }).getKey("idpkey");
const legacyKid = kvKey.key!.kid!;
// As `az keyvault key show` printed them, so the bash tool stored and published them: standard base64.
const std = (b: Uint8Array) => Buffer.from(b).toString("base64");
const issuer = `${account.properties.primaryEndpoints.blob.replace(/\/+$/, "")}/public`;
const blobs = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key)).getContainerClient("public");
const upload = (name: string, doc: unknown) => {
  const text = JSON.stringify(doc);
  return blobs.getBlockBlobClient(name).upload(text, Buffer.byteLength(text), { blobHTTPHeaders: { blobContentType: "application/json" } });
};
await upload("jwks_uri/keys", { keys: [{ issuer, kid: legacyKid, kty: "RSA", e: std(kvKey.key!.e!), n: std(kvKey.key!.n!) }] });
await upload(".well-known/openid-configuration", {
  issuer, token_endpoint: issuer, jwks_uri: `${issuer}/jwks_uri/keys`, id_token_signing_alg_values_supported: ["RS256"],
  token_endpoint_auth_methods_supported: ["client_secret_post"], response_modes_supported: ["form_post"], response_types_supported: ["id_token"],
  scopes_supported: ["openid"], claims_supported: ["sub", "iss", "aud", "exp", "iat", "name"],
});
const subject = `metering-submission-via-uami from ${domain}`;
const mrgId = `/subscriptions/${customer.subscriptionId}/resourceGroups/${customer.managedResourceGroup}`;
const uami = await armPut(sb, `${mrgId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami?api-version=2023-01-31`, { location: "westeurope" });
await armPut(sb, `${uami.id}/federatedIdentityCredentials/fed?api-version=2023-01-31`, {
  properties: { issuer, subject, audiences: ["api://AzureADTokenExchange"] },
});
const bashConfig = {
  publisher: {
    aadTenantId: domain, subscriptionId: isv.subscriptionId, resourceGroup: RG, location: "westeurope",
    optional: { storageAccountName: ACCOUNT, containerName: "public", keyVaultName: ACCOUNT },
    idp: {
      issuer, keyUri: keyResource.properties.keyUri, keyId: legacyKid,
      keyJson: { kid: legacyKid, keyOps: ["sign"], kty: "RSA", e: std(kvKey.key!.e!), n: std(kvKey.key!.n!) },
      // Not the bash tool's: the waiting time this test can afford (the default is a day).
      jwksCacheSeconds: JWKS_CACHE_S,
    },
  },
  customers: {
    [customer.subscriptionId]: {
      [customer.managedResourceGroup]: {
        uamiClientId: uami.properties.clientId, tenantId: uami.properties.tenantId, subject, audience: "api://AzureADTokenExchange",
        uamiName: "metering-submission-uami", billing: { resourceId: customer.resourceUsageId, resourceUri: customer.managedAppId }, planName: customer.planId,
      },
    },
  },
};
await writeFile(configPath(), JSON.stringify(bashConfig, null, 2));

// ---- what the sandbox recorded
interface TokenRecord { grant: string; assertion?: { iss: string; sub: string; kid: string } }
const federatedTokens = async () => (await admin<TokenRecord[]>(sb, "GET", "/tokens")).filter((t) => t.grant === "client_assertion");
/** Token requests Entra received (every route of the token endpoints). */
const tokenRequests = async () => {
  const counters = (await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests")).entra ?? {};
  return Object.entries(counters).filter(([route]) => /^POST .*\/token$/.test(route)).reduce((n, [, c]) => n + c, 0);
};
const served = async (path: string) => {
  const res = await fetch(`${issuer}/${path}`);
  return { status: res.status, body: res.status === 200 ? await res.json() : undefined };
};
const servedKids = async (path = ".well-known/jwks.json") => ((await served(path)).body?.keys as Array<{ kid: string }> | undefined)?.map((k) => k.kid);
let clockOffsetMs = 0;
const advanceSandboxClock = async (ms: number) => {
  clockOffsetMs += ms;
  await admin(sb, "POST", "/clock", { offsetMs: clockOffsetMs });
};
const at = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();
let hour = 0;
let emitted = 0;
/** Emits one event for a fresh hour; returns the run and the kid of the token's assertion. */
const emit = async (dataDir = env.METERING_DATA_DIR) => {
  hour++;
  const before = (await federatedTokens()).length;
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(hourBack(hour)), customer.dimensions[0], "1"], {
    env: { ...env, METERING_DATA_DIR: dataDir },
  });
  const tokens = await federatedTokens();
  if (dataDir === env.METERING_DATA_DIR && r.code === 0) emitted++;
  return { r, kid: tokens.length > before ? tokens.at(-1)!.assertion?.kid : undefined };
};
const rotate = (extraEnv: Record<string, string> = {}, dataDir = env.METERING_DATA_DIR) =>
  runScript("0-isv-setup.mts", ["--rotate-key"], { env: { ...env, METERING_DATA_DIR: dataDir, ...extraEnv } });

let thumbprint = "";
/** Token requests of the control below, which fail on purpose and are not part of the migration. */
let controlRequests = 0;

const M = suite("migration from the bash tool");

M("the bash tool's config.json loads as is and bills: its legacy kid, its domain-named tenant, its subject", async () => {
  const { r, kid } = await emit();
  assert.is(r.code, 0, describe(r));
  assert.is(kid, legacyKid);
});

M("0-add-defaults keeps the domain (it names the signed-in tenant) and everything else the bash tool wrote", async () => {
  const before = await readConfig();
  const r = await runScript("0-add-defaults.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.equal(await readConfig(), before);
  assert.match(r.stdout, new RegExp(`publisher\\.aadTenantId\\s+${domain.replace(/\./g, "\\.")}`));
});

M("0-add-defaults on the bash tool's template fills the empty strings with defaults (no loop with 0-isv-setup)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "metering-bash-template-"));
  await writeFile(configPath(dir), JSON.stringify({
    publisher: { aadTenantId: "", subscriptionId: "", resourceGroup: "", location: "westeurope", optional: { storageAccountName: "", containerName: "", keyVaultName: "" } },
    customers: {},
  }));
  const r = await runScript("0-add-defaults.mts", [], { env: { ...env, METERING_DATA_DIR: dir } });
  assert.is(r.code, 0, describe(r));
  const { publisher } = await readConfig(dir);
  assert.equal([publisher.aadTenantId, publisher.subscriptionId, publisher.resourceGroup, publisher.location],
    [isv.tenantId, isv.subscriptionId, "marketplace-metering-idp-backend", "westeurope"]);
  const doctor = await runScript("doctor.mts", [], { env: { ...env, METERING_DATA_DIR: dir } });
  assert.not.match(doctor.stdout + doctor.stderr, /run 0-add-defaults/, "the next step is 0-isv-setup, not 0-add-defaults again");
  assert.match(doctor.stdout + doctor.stderr, /0-isv-setup/);
});

M("the sandbox's Entra serves the tenant's OIDC metadata under each verified domain, with the tenant id in the issuer", async () => {
  assert.ok(domain, "the seeded ISV tenant has a custom domain");
  for (const d of sb.state.tenants.get(isv.tenantId)!.domains) {
    const res = await fetch(`${sb.endpoints.entra}/${d}/v2.0/.well-known/openid-configuration`);
    assert.is(res.status, 200, d);
    assert.is((await res.json()).issuer, `${sb.endpoints.entra}/${isv.tenantId}/v2.0`);
  }
  const unknown = await fetch(`${sb.endpoints.entra}/not-verified.example/v2.0/.well-known/openid-configuration`);
  assert.is(unknown.status, 400);
  assert.match((await unknown.json()).error_description, /^AADSTS90002/);
});

M("0-isv-setup migrates as phase 1 of a rotation: the thumbprint kid is published beside the legacy kid, which keeps signing", async () => {
  const versionsBefore = [...vaultStore(sb.state).values()].find((v) => v.name === ACCOUNT)!.keys.get("idpkey")!.versions.length;
  const r = await runScript("0-isv-setup.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /migration\s+phase 1 of 3 done/);
  const { publisher } = await readConfig();
  const { idp } = publisher;
  assert.is(publisher.aadTenantId, domain);
  assert.is(idp.issuer, issuer, "the same issuer: the same account and container");
  assert.equal(idp.keys.map((k: { state: string; keyId: string }) => [k.state, k.keyId]), [["active", legacyKid], ["published", legacyKid]], "one key version, two kids");
  assert.is(idp.keys[0].kid, legacyKid);
  thumbprint = idp.keys[1].kid;
  assert.match(thumbprint, /^[A-Za-z0-9_-]{43}$/);
  assert.is(idp.keyJson.kid, legacyKid);
  assert.is(idp.legacyJwksPath, "jwks_uri/keys");
  assert.is([...vaultStore(sb.state).values()].find((v) => v.name === ACCOUNT)!.keys.get("idpkey")!.versions.length, versionsBefore, "no new key version");
  assert.is(sb.state.ofType("Microsoft.Storage/storageAccounts").filter((a) => a.resourceGroup === RG).length, 1, "no second storage account");
  // What anyone (Entra) reads anonymously now: the new discovery document, both kids at both JWKS paths.
  assert.is((await served(".well-known/openid-configuration")).body.jwks_uri, `${issuer}/.well-known/jwks.json`);
  assert.equal(await servedKids(), [legacyKid, thumbprint]);
  assert.equal(await servedKids("jwks_uri/keys"), [legacyKid, thumbprint]);
  for (const k of (await served(".well-known/jwks.json")).body.keys) {
    assert.equal([k.use, k.alg], ["sig", "RS256"]);
    assert.match(k.n, /^[A-Za-z0-9_-]+$/, "base64url, as Entra without lenience wants it");
  }
  const { records } = await readAudit(env);
  const migration = records.find((x) => x.operation === "issuer.migrateKid");
  assert.ok(migration, "an audit record of the migration phase");
  assert.is(migration!.outcome, "succeeded");
  assert.ok(migration!.targets.includes(`${issuer}/.well-known/jwks.json`), JSON.stringify(migration));
  for (const op of ["issuer.resourceGroup", "issuer.deploy"]) assert.ok(records.some((x) => x.operation === op && x.outcome === "succeeded"), op);
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, legacyKid, "Entra still has the bash JWKS cached: the legacy kid works");
});

M("control: switching at once would have failed every exchange (Entra's cache holds the bash JWKS)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "metering-bash-early-"));
  await cp(configPath(), configPath(dir));
  const before = await tokenRequests();
  const r = await rotate({ METERING_ROTATION_NOW: at(2 * JWKS_CACHE_S * 1000) }, dir);
  assert.is(r.code, 0, describe(r));
  const { r: e, kid } = await emit(dir);
  controlRequests += await tokenRequests() - before;
  assert.is(e.code, 1, describe(e));
  assert.is(kid, undefined);
  assert.match(e.stderr, /AADSTS7000272/);
});

M("--rotate-key refuses to switch before the JWKS cache time is over and changes nothing", async () => {
  const before = await readFile(configPath(), "utf8");
  const r = await rotate();
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Cannot sign with the new key yet \(phase 2 of 3\)/);
  assert.is(await readFile(configPath(), "utf8"), before);
});

M("after the cache time, --rotate-key signs with the thumbprint kid; the legacy kid stays published", async () => {
  await admin(sb, "PATCH", "/options", { entra: { jwksCacheTtlS: JWKS_CACHE_S } });
  await advanceSandboxClock((JWKS_CACHE_S + 1) * 1000);
  const r = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 1) * 1000) });
  assert.is(r.code, 0, describe(r));
  const { idp } = (await readConfig()).publisher;
  assert.equal(idp.keys.map((k: { kid: string; state: string }) => [k.kid, k.state]), [[legacyKid, "published"], [thumbprint, "active"]]);
  assert.is(idp.keyJson.kid, thumbprint);
  assert.equal((await servedKids())!.sort(), [legacyKid, thumbprint].sort());
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, thumbprint);
});

M("the legacy kid leaves the JWKS only after the retire time; the bash tool's jwks_uri/keys goes with it", async () => {
  const early = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 2) * 1000) });
  assert.is(early.code, 1, describe(early));
  assert.match(early.stderr, /Cannot retire the old key yet \(phase 3 of 3\)/);
  assert.equal((await servedKids())!.sort(), [legacyKid, thumbprint].sort());
  const r = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 901 + 5) * 1000) });
  assert.is(r.code, 0, describe(r));
  assert.equal(await servedKids(), [thumbprint]);
  assert.is((await served("jwks_uri/keys")).status, 404);
  const { idp } = (await readConfig()).publisher;
  assert.is(idp.keys.find((k: { kid: string }) => k.kid === legacyKid).state, "retired");
  assert.is(idp.legacyJwksPath, undefined);
  const { records } = await readAudit(env);
  const phases = records.filter((x) => x.operation === "issuer.rotateKey" && x.outcome === "succeeded");
  assert.equal(phases.map((x) => x.detail.phase), [2, 3]);
  assert.ok(phases[1].targets.includes(`${issuer}/jwks_uri/keys`), "the deleted blob is named");
  await advanceSandboxClock((JWKS_CACHE_S + 1) * 1000);
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, thumbprint);
});

M("zero failed exchanges: every token request of the migration got a token, and every event was accepted", async () => {
  const tokens = await federatedTokens();
  assert.is(tokens.length, emitted);
  assert.is(await tokenRequests() - controlRequests, tokens.length, "no token request without a token");
  assert.equal([...new Set(tokens.map((t) => t.assertion?.kid))], [legacyKid, thumbprint]);
  assert.is((await admin<unknown[]>(sb, "GET", "/metering/events")).length, emitted);
});

M("the doctor finds the migrated issuer whole", async () => {
  const r = await runScript("doctor.mts", ["--json"], { env });
  const checks = JSON.parse(r.stdout).checks as Array<{ id: string; status: string; detail?: string }>;
  const ids = ["config", "discovery", "discovery-issuer", "jwks", "jwks-keys", "key-exists", "key-signs", "key-matches-jwks", "test-assertion", "fic", "token"];
  const issuerChecks = checks.filter((c) => ids.includes(c.id));
  for (const c of issuerChecks) assert.is(c.status, "ok", JSON.stringify(c));
  assert.equal([...new Set(issuerChecks.map((c) => c.id))].sort(), [...ids].sort(), JSON.stringify(checks.map((c) => c.id)));
});

M.after(() => sb.stop());
M.run();
