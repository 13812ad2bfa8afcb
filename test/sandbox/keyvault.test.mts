// The emulated Key Vault data plane, reached the way the product reaches it: a vault and its
// key created through ARM, then Microsoft's @azure/keyvault-keys / @azure/keyvault-secrets
// clients (only disableChallengeResourceVerification set) and raw fetch for the wire details:
// the 401 challenge, RBAC and access policies, signing verified with jose, digest rules,
// versions, api-versions and unknown routes.
import { createHash, randomUUID } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import { SecretClient } from "@azure/keyvault-secrets";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { arm } from "../helpers/arm.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox({ azurite: false });
const isv = sb.world.isv;
const VAULT_AUDIENCE = "https://vault.azure.net";
const KV_API = "api-version=7.4";

interface Who {
  tenantId: string;
  objectId: string;
}
const OFFICER: Who = { tenantId: isv.tenantId, objectId: isv.userObjectId };
const SIGNER: Who = { tenantId: isv.tenantId, objectId: randomUUID() };
const NOBODY: Who = { tenantId: isv.tenantId, objectId: randomUUID() };

async function tokenFor(who: Who, audience = VAULT_AUDIENCE, tenantId = who.tenantId): Promise<string> {
  return (await sb.tokens.issue({ tenantId, audience, objectId: who.objectId, idtyp: "user", lifetimeS: 3600, grant: "test" })).token;
}

/** A TokenCredential as the SDKs call it: the challenge's tenant arrives in options.tenantId. */
function credential(who: Who) {
  const calls: Array<{ scopes: string | string[]; tenantId?: string }> = [];
  return {
    calls,
    getToken: async (scopes: string | string[], options?: { tenantId?: string }) => {
      calls.push({ scopes, tenantId: options?.tenantId });
      const { token, claims } = await sb.tokens.issue({
        tenantId: options?.tenantId ?? who.tenantId, audience: VAULT_AUDIENCE, objectId: who.objectId, idtyp: "user", lifetimeS: 3600, grant: "test",
      });
      return { token, expiresOnTimestamp: Number(claims.exp) * 1000 };
    },
  };
}

const SDK_OPTIONS = { disableChallengeResourceVerification: true };


// deno-lint-ignore no-explicit-any
async function kv(method: string, path: string, o: { token?: string; who?: Who; body?: unknown; rawBody?: string } = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const headers: Record<string, string> = {};
  const token = o.token ?? (o.who ? await tokenFor(o.who) : undefined);
  if (token) headers.authorization = `Bearer ${token}`;
  if (o.body !== undefined || o.rawBody !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(vaultUri + path.replace(/^\//, ""), { method, headers, body: o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body)) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

// deno-lint-ignore no-explicit-any
async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.unreachable("should have been rejected");
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");
const sha256 = (s: string | Uint8Array) => createHash("sha256").update(s).digest();

// ---------------------------------------------------------------- the world: a vault and a key made through ARM

const rgId = `/subscriptions/${isv.subscriptionId}/resourceGroups/idp-rg`;
assert.is((await arm(sb, "PUT", `${rgId}?api-version=2021-04-01`, { location: "westeurope" })).status, 201);
const vaultRes = await arm(sb, "PUT", `${rgId}/providers/Microsoft.KeyVault/vaults/idpvault1?api-version=2025-05-01`, {
  location: "westeurope",
  properties: { tenantId: isv.tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true, enableSoftDelete: true, softDeleteRetentionInDays: 90 },
});
assert.is(vaultRes.status, 201, JSON.stringify(vaultRes.json));
const vaultId: string = vaultRes.json.id;
const vaultUri: string = vaultRes.json.properties.vaultUri;
const keyPath = `${vaultId}/keys/idpkey?api-version=2025-05-01`;
const keyRes = await arm(sb, "PUT", keyPath, { properties: { kty: "RSA", keySize: 2048, keyOps: ["sign", "verify"] } });
assert.is(keyRes.status, 200, JSON.stringify(keyRes.json));

async function grant(principalId: string, roleId: string): Promise<void> {
  const a = await arm(sb, "PUT", `${vaultId}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, {
    properties: { roleDefinitionId: `/subscriptions/${isv.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`, principalId, principalType: "User" },
  });
  assert.is(a.status, 201, JSON.stringify(a.json));
}
await grant(OFFICER.objectId, ROLE.KeyVaultCryptoOfficer);
await grant(OFFICER.objectId, ROLE.KeyVaultSecretsOfficer);
await grant(SIGNER.objectId, ROLE.KeyVaultCryptoUser);

// ---------------------------------------------------------------- ARM view

const Arm = suite("Key Vault through ARM");

Arm("the vault's URI is its own HTTPS port on 127.0.0.1; the key's URIs point into it", () => {
  assert.match(vaultUri, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  assert.is(keyRes.json.properties.keyUri, `${vaultUri}keys/idpkey`);
  assert.match(keyRes.json.properties.keyUriWithVersion, new RegExp(`^${vaultUri}keys/idpkey/[0-9a-f]{32}$`));
  assert.equal(keyRes.json.properties.keyOps, ["sign", "verify"]);
  assert.is(keyRes.json.properties.keySize, 2048);
});

Arm("a re-PUT of the ARM key (same or changed properties) creates no new version (Keys_CreateIfNotExist)", async () => {
  const again = await arm(sb, "PUT", keyPath, { properties: { kty: "RSA", keySize: 2048, keyOps: ["sign", "verify"] } });
  assert.is(again.status, 200);
  assert.is(again.json.properties.keyUriWithVersion, keyRes.json.properties.keyUriWithVersion);
  const changed = await arm(sb, "PUT", keyPath, { properties: { kty: "RSA", keySize: 4096, keyOps: ["sign"] } });
  assert.is(changed.json.properties.keyUriWithVersion, keyRes.json.properties.keyUriWithVersion);
  assert.is(changed.json.properties.keySize, 2048);
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const versions = [];
  for await (const v of client.listPropertiesOfKeyVersions("idpkey")) versions.push(v.version);
  assert.is(versions.length, 1);
});

Arm("ARM refuses bad vault names and key sizes, and a vault name taken elsewhere", async () => {
  const bad = await arm(sb, "PUT", `${rgId}/providers/Microsoft.KeyVault/vaults/1bad--name?api-version=2025-05-01`, { location: "westeurope", properties: { tenantId: isv.tenantId, sku: { family: "A", name: "standard" } } });
  assert.is(bad.status, 400);
  assert.is(bad.json.error.code, "VaultNameNotValid");
  const size = await arm(sb, "PUT", `${vaultId}/keys/oddsize?api-version=2025-05-01`, { properties: { kty: "RSA", keySize: 1024 } });
  assert.is(size.status, 400);
  assert.match(size.json.error.message, /1024/);
  assert.is((await arm(sb, "PUT", `/subscriptions/${isv.subscriptionId}/resourceGroups/other-rg?api-version=2021-04-01`, { location: "westeurope" })).status, 201);
  const taken = await arm(sb, "PUT", `/subscriptions/${isv.subscriptionId}/resourceGroups/other-rg/providers/Microsoft.KeyVault/vaults/IDPVAULT1?api-version=2025-05-01`, {
    location: "westeurope", properties: { tenantId: isv.tenantId, sku: { family: "A", name: "standard" } },
  });
  assert.is(taken.status, 409);
  assert.is(taken.json.error.code, "VaultAlreadyExists");
});

Arm("an ARM secret stores the value in the vault but ARM never returns it", async () => {
  const put = await arm(sb, "PUT", `${vaultId}/secrets/arm-secret?api-version=2025-05-01`, { properties: { value: "s3cr3t", contentType: "text/plain" } });
  assert.is(put.status, 201, JSON.stringify(put.json));
  assert.is(put.json.properties.value, undefined);
  assert.is(JSON.stringify(put.json).includes("s3cr3t"), false);
  const got = await arm(sb, "GET", `${vaultId}/secrets/arm-secret?api-version=2025-05-01`);
  assert.is(JSON.stringify(got.json).includes("s3cr3t"), false);
  const secrets = new SecretClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  assert.is((await secrets.getSecret("arm-secret")).value, "s3cr3t");
  const mirrored = sb.state.getResource(`${vaultId}/secrets/arm-secret`);
  assert.is(mirrored?.type, "Microsoft.KeyVault/vaults/secrets");
  assert.is(JSON.stringify(mirrored).includes("s3cr3t"), false);
});

Arm.run();

// ---------------------------------------------------------------- the challenge and bearer checks

const Challenge = suite("Key Vault 401 challenge and bearer checks");

Challenge("a request without Authorization and without a body gets the challenge before anything is parsed", async () => {
  const a = await kv("POST", "/keys/idpkey/sign?api-version=7.3");
  assert.is(a.status, 401);
  assert.is(a.headers.get("www-authenticate"), `Bearer authorization="https://login.windows.net/${isv.tenantId}", resource="https://vault.azure.net"`);
  assert.equal(a.json, { error: { code: "Unauthorized", message: "Request is missing a Bearer or PoP token." } });
});

Challenge("the challenge comes first even for a malformed body, an unknown route or a bad api-version", async () => {
  for (const [method, path, rawBody] of [["POST", "/keys/idpkey/sign?api-version=7.3", "{not json"], ["GET", "/nowhere?api-version=7.4", undefined], ["GET", "/keys/idpkey?api-version=1.0", undefined]]) {
    const a = await kv(method as string, path as string, { rawBody: rawBody as string | undefined });
    assert.is(a.status, 401, `${method} ${path}`);
    assert.is(a.json.error.code, "Unauthorized");
  }
});

Challenge("a token for another audience or another tenant is refused with 401 and the challenge", async () => {
  const wrongAudience = await kv("GET", `/keys/idpkey?${KV_API}`, { token: await tokenFor(OFFICER, "https://management.azure.com/") });
  assert.is(wrongAudience.status, 401);
  assert.match(wrongAudience.json.error.message, /AKV10022: Invalid audience/);
  assert.ok(wrongAudience.headers.get("www-authenticate"));
  const otherTenant = await kv("GET", `/keys/idpkey?${KV_API}`, { token: await tokenFor(OFFICER, VAULT_AUDIENCE, sb.world.customers[0].tenantId) });
  assert.is(otherTenant.status, 401);
  assert.match(otherTenant.json.error.message, /AKV10032: Invalid issuer/);
});

Challenge("the SDK follows the challenge: scope vault/.default, the vault's tenant", async () => {
  const cred = credential(OFFICER);
  const key = await new KeyClient(vaultUri, cred, SDK_OPTIONS).getKey("idpkey");
  assert.is(key.name, "idpkey");
  assert.equal(cred.calls[0], { scopes: ["https://vault.azure.net/.default"], tenantId: isv.tenantId });
});

Challenge.run();

// ---------------------------------------------------------------- keys and signing

const Keys = suite("keys and signing");

Keys("CryptographyClient.signData(RS256) makes a JWT that jose verifies against the key's public JWK", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const key = await client.getKey("idpkey");
  assert.is(key.id, keyRes.json.properties.keyUriWithVersion);
  assert.is((key.key as { d?: unknown }).d, undefined, "the private half never leaves the vault");
  const header = { typ: "JWT", alg: "RS256", kid: key.id };
  const payload = { iss: "https://idp.example/public", sub: "metering", aud: "api://AzureADTokenExchange", iat: 1700000000, exp: 4700000000 };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const crypto = new CryptographyClient(key.id!, credential(SIGNER), SDK_OPTIONS);
  const signed = await crypto.signData("RS256", Buffer.from(input));
  assert.is(signed.keyID, key.id);
  const jwt = `${input}.${b64url(signed.result)}`;
  const publicKey = await jose.importJWK({ kty: "RSA", n: b64url(key.key!.n!), e: b64url(key.key!.e!) }, "RS256");
  const { payload: verified } = await jose.jwtVerify(jwt, publicKey, { currentDate: new Date(1700000100 * 1000) });
  assert.is(verified.sub, "metering");
});

Keys("sign accepts the digest as base64url or padded standard base64 and answers base64url", async () => {
  const digest = sha256("standard base64 please");
  const asStandard = digest.toString("base64");
  assert.ok(asStandard.endsWith("="), "a 32-byte digest is padded in standard base64");
  const a = await kv("POST", `/keys/idpkey/${keyRes.json.properties.keyUriWithVersion.split("/").pop()}/sign?api-version=7.3`, { who: SIGNER, body: { alg: "RS256", value: asStandard } });
  assert.is(a.status, 200, JSON.stringify(a.json));
  const b = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: digest.toString("base64url") } });
  assert.is(b.json.value, a.json.value, "PKCS#1 v1.5 is deterministic");
  assert.match(a.json.value, /^[A-Za-z0-9_-]+$/);
  const verify = await kv("POST", `/keys/idpkey/verify?${KV_API}`, { who: SIGNER, body: { alg: "RS256", digest: digest.toString("base64url"), value: a.json.value } });
  assert.equal(verify.json, { value: true });
  const tampered = await kv("POST", `/keys/idpkey/verify?${KV_API}`, { who: SIGNER, body: { alg: "RS256", digest: sha256("other").toString("base64url"), value: a.json.value } });
  assert.equal(tampered.json, { value: false });
});

Keys("the admin API's /cpu counts the CPU seconds of the signatures, and only of signatures", async () => {
  const cpu = async () => (await (await fetch(`${sb.endpoints.admin}/cpu`)).json() as Record<string, number>)["keyvault.sign"] ?? 0;
  const before = await cpu();
  const verify = await kv("POST", `/keys/idpkey/verify?${KV_API}`, { who: SIGNER, body: { alg: "RS256", digest: sha256("x").toString("base64url"), value: "AAAA" } });
  assert.is(verify.status, 200);
  assert.is(await cpu(), before, "a verification is not a signature");
  for (let i = 0; i < 5; i++) {
    const a = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: sha256(`cpu ${i}`).toString("base64url") } });
    assert.is(a.status, 200);
  }
  assert.ok(await cpu() > before, "five RSA private-key operations take measurable CPU");
});

Keys("a digest that is not 32 bytes for RS256 is 400 BadParameter", async () => {
  for (const digest of [Buffer.alloc(20, 1), Buffer.alloc(33, 1), Buffer.from("")]) {
    const a = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: digest.toString("base64url") } });
    assert.is(a.status, 400, `${digest.length} bytes`);
    assert.is(a.json.error.code, "BadParameter");
  }
  const notBase64 = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: "!!not base64!!" } });
  assert.is(notBase64.status, 400);
  const ps = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: SIGNER, body: { alg: "PS256", value: sha256("x").toString("base64url") } });
  assert.is(ps.status, 400);
  assert.match(ps.json.error.message, /PS256/);
});

Keys("unversioned sign uses the latest version; versions are 32 lower-hex and listed", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const v1 = await client.createKey("rotating", "RSA", { keySize: 2048, keyOps: ["sign", "verify"] });
  const v2 = await client.createKey("rotating", "RSA", { keySize: 3072, keyOps: ["sign", "verify"] });
  assert.match(v2.properties.version!, /^[0-9a-f]{32}$/);
  assert.is.not(v1.properties.version, v2.properties.version);
  const digest = sha256("latest");
  const a = await kv("POST", `/keys/rotating/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: digest.toString("base64url") } });
  assert.is(a.json.kid, v2.id);
  const publicKey = await jose.importJWK({ kty: "RSA", n: b64url(v2.key!.n!), e: b64url(v2.key!.e!) }, "RS256");
  const input = `${b64url('{"alg":"RS256"}')}.${b64url("{}")}`;
  const jws = await kv("POST", `/keys/rotating/sign?${KV_API}`, { who: SIGNER, body: { alg: "RS256", value: sha256(input).toString("base64url") } });
  await jose.compactVerify(`${input}.${jws.json.value}`, publicKey);
  const versions = [];
  for await (const p of client.listPropertiesOfKeyVersions("rotating")) versions.push(p.version);
  assert.equal(versions.sort(), [v1.properties.version, v2.properties.version].sort());
  const old = await client.getKey("rotating", { version: v1.properties.version });
  assert.is(old.id, v1.id);
  // ARM and the sandbox's ARM state follow the data plane's current version.
  assert.is((await arm(sb, "GET", `${vaultId}/keys/rotating?api-version=2025-05-01`)).json.properties.keyUriWithVersion, v2.id);
  assert.is(sb.state.getResource(`${vaultId}/keys/rotating`)?.properties.keyUriWithVersion, v2.id);
});

Keys("key_ops without sign: the vault refuses to sign", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  await client.createKey("verify-only", "RSA", { keyOps: ["verify"] });
  const a = await kv("POST", `/keys/verify-only/sign?${KV_API}`, { who: OFFICER, body: { alg: "RS256", value: sha256("x").toString("base64url") } });
  assert.is(a.status, 403);
  assert.is(a.json.error.code, "Forbidden");
  assert.match(a.json.error.message, /key_ops/);
});

Keys("key sizes other than 2048/3072/4096 and kinds other than RSA are refused", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const size = await rejection(client.createKey("tiny", "RSA", { keySize: 1024 }));
  assert.is(size.statusCode, 400);
  assert.is(size.code, "BadParameter");
  const ec = await rejection(client.createKey("curve", "EC"));
  assert.is(ec.statusCode, 400);
  const badName = await kv("POST", `/keys/bad_name/create?${KV_API}`, { who: OFFICER, body: { kty: "RSA" } });
  assert.equal(badName.json, { error: { code: "BadParameter", message: "The request URI contains an invalid name: bad_name" } });
});

Keys("unknown keys and versions are 404 KeyNotFound in Key Vault's shape; export is refused", async () => {
  const a = await kv("GET", `/keys/nope?${KV_API}`, { who: OFFICER });
  assert.is(a.status, 404);
  assert.is(a.json.error.code, "KeyNotFound");
  assert.match(a.json.error.message, /^A key with \(name\/id\) nope was not found in this key vault\./);
  const v = await kv("GET", `/keys/idpkey/${"0".repeat(32)}?${KV_API}`, { who: OFFICER });
  assert.is(v.json.error.code, "KeyNotFound");
  const exp = await kv("POST", `/keys/idpkey/${keyRes.json.properties.keyUriWithVersion.split("/").pop()}/export?${KV_API}`, { who: OFFICER, body: {} });
  assert.is(exp.status, 403);
  assert.is(JSON.stringify(exp.json).includes('"d"'), false);
});

Keys("a disabled version refuses to sign and to be read while the other versions keep signing", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const v1 = await client.createKey("rotate-disable", "RSA", { keySize: 2048, keyOps: ["sign", "verify"] });
  const v2 = await client.createKey("rotate-disable", "RSA", { keySize: 2048, keyOps: ["sign", "verify"] });
  const updated = await client.updateKeyProperties("rotate-disable", v1.properties.version!, { enabled: false });
  assert.is(updated.properties.enabled, false);
  const old = new CryptographyClient(v1.id!, credential(OFFICER), SDK_OPTIONS);
  const refused = await rejection(old.signData("RS256", Buffer.from("x")));
  assert.is(refused.statusCode, 403);
  assert.is(refused.code, "Forbidden");
  assert.match(refused.message, /disabled/);
  const current = new CryptographyClient(v2.id!, credential(OFFICER), SDK_OPTIONS);
  assert.is((await current.signData("RS256", Buffer.from("x"))).keyID, v2.id);
  const read = await rejection(client.getKey("rotate-disable", { version: v1.properties.version }));
  assert.is(read.statusCode, 403);
  assert.is(read.details?.error?.innerError?.code, "KeyDisabled");
});

Keys("beginDeleteKey deletes every version; the key is then KeyNotFound, readable as deleted, and its name is taken", async () => {
  const client = new KeyClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const v1 = await client.createKey("doomed", "RSA", { keySize: 2048, keyOps: ["sign", "verify"] });
  await client.createKey("doomed", "RSA", { keySize: 2048, keyOps: ["sign", "verify"] });
  const poller = await client.beginDeleteKey("doomed", { intervalInMs: 10 });
  const deleted = await poller.pollUntilDone();
  assert.is(deleted.name, "doomed");
  assert.is(deleted.properties.recoveryId, `${vaultUri}deletedkeys/doomed`);
  assert.ok(deleted.properties.deletedOn instanceof Date);
  assert.ok(deleted.properties.scheduledPurgeDate! > deleted.properties.deletedOn!);
  const gone = await rejection(client.getKey("doomed", { version: v1.properties.version }));
  assert.is(gone.statusCode, 404);
  assert.is(gone.code, "KeyNotFound");
  const signer = new CryptographyClient(v1.id!, credential(OFFICER), SDK_OPTIONS);
  assert.is((await rejection(signer.signData("RS256", Buffer.from("x")))).statusCode, 404);
  assert.is((await client.getDeletedKey("doomed")).name, "doomed");
  const reuse = await rejection(client.createKey("doomed", "RSA"));
  assert.is(reuse.statusCode, 409);
  assert.is(sb.state.getResource(`${vaultId}/keys/doomed`), undefined, "the ARM view of the key is gone");
  const signerOnly = await kv("DELETE", `/keys/idpkey?${KV_API}`, { who: SIGNER });
  assert.is(signerOnly.status, 403, "Crypto User may not delete keys");
});

Keys.run();

// ---------------------------------------------------------------- RBAC

const Rbac = suite("Key Vault RBAC");

Rbac("no role: 403 Forbidden / ForbiddenByRbac naming the data action", async () => {
  const a = await kv("POST", `/keys/idpkey/sign?${KV_API}`, { who: NOBODY, body: { alg: "RS256", value: sha256("x").toString("base64url") } });
  assert.is(a.status, 403);
  assert.is(a.json.error.code, "Forbidden");
  assert.is(a.json.error.innererror.code, "ForbiddenByRbac");
  assert.match(a.json.error.message, /^Caller is not authorized to perform action on resource\./);
  assert.match(a.json.error.message, /Action: 'Microsoft\.KeyVault\/vaults\/keys\/sign\/action'/);
  const err = await rejection(new KeyClient(vaultUri, credential(NOBODY), SDK_OPTIONS).getKey("idpkey"));
  assert.is(err.statusCode, 403);
  assert.is(err.code, "Forbidden");
});

Rbac("Crypto User can read and sign but cannot create keys or read secrets", async () => {
  const keys = new KeyClient(vaultUri, credential(SIGNER), SDK_OPTIONS);
  assert.is((await keys.getKey("idpkey")).name, "idpkey");
  const sig = await new CryptographyClient(keyRes.json.properties.keyUriWithVersion, credential(SIGNER), SDK_OPTIONS).sign("RS256", sha256("ok"));
  assert.is(sig.result.length, 256);
  const create = await rejection(keys.createKey("not-allowed", "RSA"));
  assert.is(create.statusCode, 403);
  assert.match(create.message, /keys\/create\/action/);
  const secret = await rejection(new SecretClient(vaultUri, credential(SIGNER), SDK_OPTIONS).getSecret("arm-secret"));
  assert.is(secret.statusCode, 403);
});

Rbac("a vault without RBAC authorization uses its access policies (AccessDenied otherwise)", async () => {
  const res = await arm(sb, "PUT", `${rgId}/providers/Microsoft.KeyVault/vaults/policyvault1?api-version=2023-07-01`, {
    location: "westeurope",
    properties: {
      tenantId: isv.tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: false,
      accessPolicies: [{ tenantId: isv.tenantId, objectId: SIGNER.objectId, permissions: { keys: ["get", "sign", "create"], secrets: [] } }],
    },
  });
  assert.is(res.status, 201, JSON.stringify(res.json));
  const uri = res.json.properties.vaultUri;
  assert.is.not(uri, vaultUri);
  const keys = new KeyClient(uri, credential(SIGNER), SDK_OPTIONS);
  const key = await keys.createKey("policykey", "RSA");
  const sig = await new CryptographyClient(key.id!, credential(SIGNER), SDK_OPTIONS).sign("RS256", sha256("p"));
  assert.is(sig.result.length, 256);
  const denied = await rejection(new SecretClient(uri, credential(SIGNER), SDK_OPTIONS).setSecret("x", "y"));
  assert.is(denied.statusCode, 403);
  assert.match(denied.message, /does not have secrets set permission/);
  const officer = await rejection(new KeyClient(uri, credential(OFFICER), SDK_OPTIONS).getKey("policykey"));
  assert.is(officer.statusCode, 403, "a Crypto Officer role does not count in access-policy mode");
});

Rbac.run();

// ---------------------------------------------------------------- secrets, api-versions, routes

const Secrets = suite("secrets, api-versions and routes");

Secrets("SecretClient set/get, versions, and 404 SecretNotFound", async () => {
  const client = new SecretClient(vaultUri, credential(OFFICER), SDK_OPTIONS);
  const first = await client.setSecret("config", "one", { contentType: "text/plain" });
  const second = await client.setSecret("config", "two");
  assert.match(first.properties.version!, /^[0-9a-f]{32}$/);
  assert.is((await client.getSecret("config")).value, "two");
  assert.is((await client.getSecret("config", { version: first.properties.version })).value, "one");
  const versions = [];
  for await (const p of client.listPropertiesOfSecretVersions("config")) versions.push(p.version);
  assert.equal(versions.sort(), [first.properties.version, second.properties.version].sort());
  const names = [];
  for await (const p of client.listPropertiesOfSecrets()) names.push(p.name);
  assert.ok(names.includes("config") && names.includes("arm-secret"));
  const missing = await rejection(client.getSecret("absent"));
  assert.is(missing.statusCode, 404);
  assert.is(missing.code, "SecretNotFound");
});

Secrets("every listed api-version is accepted; others are 400 BadParameter", async () => {
  for (const v of ["7.0", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01", "7.3-preview", "7.4-preview.1", "7.6-preview.2"]) {
    assert.is((await kv("GET", `/keys/idpkey?api-version=${v}`, { who: OFFICER })).status, 200, v);
  }
  for (const v of ["2016-10-01", "8.0", "", "7.4-preview", "7.9-preview.1"]) {
    const a = await kv("GET", `/keys/idpkey?api-version=${v}`, { who: OFFICER });
    assert.is(a.status, 400, v);
    assert.is(a.json.error.code, "BadParameter");
  }
});

Secrets("object ids name the host the client called (the Host header), else the listening address", async () => {
  const secret = await kv("PUT", `/secrets/hosted?${KV_API}`, { who: OFFICER, body: { value: "v" } });
  assert.ok(secret.json.id.startsWith(vaultUri), secret.json.id);
  const viaName = async (method: string, path: string, body?: unknown) => {
    const u = new URL(vaultUri + path.replace(/^\//, ""));
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest({
        host: u.hostname, port: u.port, path: u.pathname + u.search, method, servername: "localhost",
        headers: {
          host: "idpvault1.vault.azure.net", authorization: `Bearer ${tokenForSync}`,
          ...(payload ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) } : {}),
        },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on("error", reject);
      req.end(payload);
    });
    return { status: r.status, json: JSON.parse(r.text) };
  };
  const tokenForSync = await tokenFor(OFFICER);
  const got = await viaName("GET", `/secrets/hosted?${KV_API}`);
  assert.is(got.status, 200, JSON.stringify(got.json));
  assert.match(got.json.id, /^https:\/\/idpvault1\.vault\.azure\.net\/secrets\/hosted\/[0-9a-f]{32}$/);
  const key = await viaName("GET", `/keys/idpkey?${KV_API}`);
  assert.match(key.json.key.kid, /^https:\/\/idpvault1\.vault\.azure\.net\/keys\/idpkey\/[0-9a-f]{32}$/);
  const digest = createHash("sha256").update("x").digest("base64url");
  const signed = await viaName("POST", `/keys/idpkey/sign?${KV_API}`, { alg: "RS256", value: digest });
  assert.is(signed.status, 200, JSON.stringify(signed.json));
  assert.is(signed.json.kid, key.json.key.kid);
});

Secrets("unknown routes are 404 and unimplemented operations 501, in Key Vault's shape, never 200", async () => {
  const a = await kv("GET", `/widgets?${KV_API}`, { who: OFFICER });
  assert.is(a.status, 404);
  assert.is(a.json.error.code, "NotFound");
  const backup = await kv("POST", `/keys/idpkey/backup?${KV_API}`, { who: OFFICER });
  assert.is(backup.status, 501);
  assert.is(backup.json.error.code, "NotImplemented");
});

Secrets.after(() => sb.stop());
Secrets.run();
