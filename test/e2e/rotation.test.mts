// Signing-key rotation as processes against the sandbox, with the Entra emulator's JWKS cache on
// (60 s, and publisher.idp.jwksCacheSeconds set to match): emissions keep succeeding through every
// phase, each phase refuses to run early, and a key Entra has not seen fails with AADSTS7000272.
// The sandbox's clock moves with POST /clock; the scripts' waiting-time checks with
// METERING_ROTATION_NOW. Checked against what the sandbox recorded: the Key Vault versions, the
// JWKS it serves anonymously, and the kid of the assertion behind every token Entra issued.
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeyClient } from "@azure/keyvault-keys";
import { calculateJwkThumbprint } from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { vaultStore } from "../../sandbox/services/keyvault/store.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { hourBack, hoursAgoOf } from "../helpers/hours.mts";

const JWKS_CACHE_S = 60;
// Until phase 2 is due, Entra keeps the first JWKS it fetched however long the scripts before
// take on a busy machine (the test that skips the wait needs it still cached); from then on its
// cache lasts JWKS_CACHE_S, as the publisher's waiting time assumes.
const sb = await startTestSandbox({ options: { entra: { jwksCacheTtlS: 3600 } } });
const env = await sandboxEnv(sb);
const customer = sb.world.customers[0];
const configPath = (dir = env.METERING_DATA_DIR) => join(dir, "config.json");
const readConfig = async (dir?: string) => JSON.parse(await readFile(configPath(dir), "utf8"));
const writeConfig = (config: unknown, dir?: string) => writeFile(configPath(dir), JSON.stringify(config, null, 2));

interface TokenRecord { grant: string; assertion?: { iss: string; sub: string; kid: string } }
const federatedTokens = async () => (await admin<TokenRecord[]>(sb, "GET", "/tokens")).filter((t) => t.grant === "client_assertion");
const publishedKids = async () => {
  const { issuer } = (await readConfig()).publisher.idp;
  const res = await fetch(`${issuer}/.well-known/jwks.json`);
  assert.is(res.status, 200);
  return ((await res.json()).keys as Array<{ kid: string }>).map((k) => k.kid);
};
const keyVersions = () => {
  // The ISV's vault: the one holding the signing key (the world seeds customers' vaults too).
  const vault = [...vaultStore(sb.state).values()].find((v) => v.keys.has("idpkey"))!;
  return vault.keys.get("idpkey")!.versions.map((v) => v.version);
};
let clockOffsetMs = 0;
const advanceSandboxClock = async (ms: number) => {
  clockOffsetMs += ms;
  await admin(sb, "POST", "/clock", { offsetMs: clockOffsetMs });
};
let hour = 0;
/** Emits one event for a fresh hour; returns the run and the kid of the token's assertion. */
const emit = async (dataDir = env.METERING_DATA_DIR) => {
  hour++;
  const before = (await federatedTokens()).length;
  const r = await runScript("2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, await hoursAgoOf(hourBack(hour)), customer.dimensions[0], "1"], {
    env: { ...env, METERING_DATA_DIR: dataDir },
  });
  const tokens = await federatedTokens();
  return { r, kid: tokens.length > before ? tokens.at(-1)!.assertion?.kid : undefined };
};
const rotate = (extraEnv: Record<string, string> = {}, dataDir = env.METERING_DATA_DIR) =>
  runScript("0-isv-setup.mts", ["--rotate-key"], { env: { ...env, METERING_DATA_DIR: dataDir, ...extraEnv } });
const at = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

let oldKid = "";
let newKid = "";

const R = suite("key rotation");

R.before(async () => {
  for (const [script, args] of [["0-add-defaults.mts", []], ["0-isv-setup.mts", []], ["1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup]]] as const) {
    const r = await runScript(script, [...args], { env });
    assert.is(r.code, 0, `${script}: ${describe(r)}`);
  }
  const config = await readConfig();
  config.publisher.idp.jwksCacheSeconds = JWKS_CACHE_S;
  await writeConfig(config);
});

R("before any rotation: one active key, recorded with its state, signs every assertion", async () => {
  const { idp } = (await readConfig()).publisher;
  assert.is(idp.keys.length, 1);
  assert.is(idp.keys[0].state, "active");
  assert.is(idp.keys[0].keyId, idp.keyId);
  oldKid = idp.keys[0].kid;
  assert.is(idp.keyJson.kid, oldKid);
  const { r, kid } = await emit();
  assert.is(r.code, 0, describe(r));
  assert.is(kid, oldKid);
});

R("phase 1 creates a new Key Vault version and publishes it beside the old key; the old key keeps signing", async () => {
  const versionsBefore = keyVersions();
  const r = await rotate({}, undefined);
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /phase\s+1 of 3 \(publish\) done/);
  const versions = keyVersions();
  assert.is(versions.length, versionsBefore.length + 1);
  const { idp } = (await readConfig()).publisher;
  assert.equal(idp.keys.map((k: { state: string }) => k.state), ["active", "published"]);
  newKid = idp.keys[1].kid;
  assert.ok(idp.keys[1].keyId.endsWith(`/${versions.at(-1)}`), "the new entry names the new version");
  assert.ok(idp.keys[1].publishedAt);
  assert.is(idp.keyJson.kid, oldKid, "keyJson still names the signing key");
  assert.equal(await publishedKids(), [oldKid, newKid]);
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, oldKid);
});

R("phase 2 refuses to run before the JWKS cache time is over, says when, and changes nothing", async () => {
  const before = await readFile(configPath(), "utf8");
  const published = Date.parse((await readConfig()).publisher.idp.keys[1].publishedAt);
  const r = await rotate({ METERING_ROTATION_NOW: new Date(published + (JWKS_CACHE_S - 1) * 1000).toISOString() });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Cannot sign with the new key yet \(phase 2 of 3\)/);
  assert.match(r.stderr, /jwksCacheSeconds/);
  assert.match(r.stderr, /run 0-isv-setup --rotate-key again after \d{4}-\d{2}-\d{2}T/);
  assert.is(await readFile(configPath(), "utf8"), before);
  assert.is(r.stderr.trim().split("\n").length, 1, "one line");
});

R("a refusal under --json is a JSON document on stdout, with the same exit code and nothing changed", async () => {
  const before = await readFile(configPath(), "utf8");
  const published = Date.parse((await readConfig()).publisher.idp.keys[1].publishedAt);
  const dueAt = new Date(published + JWKS_CACHE_S * 1000).toISOString();
  const r = await runScript("0-isv-setup.mts", ["--rotate-key", "--json"], {
    env: { ...env, METERING_ROTATION_NOW: new Date(published + (JWKS_CACHE_S - 1) * 1000).toISOString() },
  });
  assert.is(r.code, 1, describe(r));
  const doc = JSON.parse(r.stdout);
  assert.is(doc.ok, false);
  assert.is(doc.error.code, "ERR_ROTATION_NOT_DUE");
  assert.match(doc.error.message, /Cannot sign with the new key yet \(phase 2 of 3\)/);
  assert.is(doc.error.exitCode, 1);
  assert.is(doc.error.dueAt, dueAt);
  assert.match(r.stderr, /Cannot sign with the new key yet/, "the person still reads the line on stderr");
  assert.is(await readFile(configPath(), "utf8"), before);
});

R("a usage error under --json is a JSON document too (exit 2)", async () => {
  const r = await runScript("0-isv-setup.mts", ["--rotate-key", "--json", "--bogus"], { env });
  assert.is(r.code, 2, describe(r));
  assert.equal(JSON.parse(r.stdout), { ok: false, error: { code: "ERR_USAGE", message: "Cannot parse arguments: Unknown option '--bogus'", exitCode: 2 } });
});

R("skipping the wait: Entra still has the old JWKS cached, so the new key fails with 7000272 and a hint", async () => {
  const dir = await mkdtemp(join(tmpdir(), "metering-rotation-early-"));
  await cp(configPath(), configPath(dir));
  const r = await rotate({ METERING_ROTATION_NOW: at(2 * JWKS_CACHE_S * 1000) }, dir);
  assert.is(r.code, 0, describe(r));
  assert.is((await readConfig(dir)).publisher.idp.keyJson.kid, newKid);
  const { r: e, kid } = await emit(dir);
  assert.is(e.code, 1, describe(e));
  assert.is(kid, undefined, "no token issued");
  assert.match(e.stderr, /AADSTS7000272/);
  assert.match(e.stderr, new RegExp(`kid ${newKid}`));
  assert.match(e.stderr, /--rotate-key/);
});

R("a key that was never published fails with 7000272 and a hint", async () => {
  const dir = await mkdtemp(join(tmpdir(), "metering-rotation-unpublished-"));
  await cp(configPath(), configPath(dir));
  const config = await readConfig(dir);
  const keyUri: string = config.publisher.idp.keyUri;
  const isv = sb.world.isv;
  const credential = {
    getToken: async (_scopes: string | string[], options?: { tenantId?: string }) => {
      const { token, claims } = await sb.tokens.issue({
        tenantId: options?.tenantId ?? isv.tenantId, audience: "https://vault.azure.net", objectId: isv.userObjectId, idtyp: "user", lifetimeS: 3600, grant: "test",
      });
      return { token, expiresOnTimestamp: Number(claims.exp) * 1000 };
    },
  };
  const client = new KeyClient(new URL(keyUri).origin, credential, { disableChallengeResourceVerification: true });
  const key = await client.createRsaKey("idpkey", { keySize: 2048, keyOps: ["sign", "verify"] });
  const jwk = { kty: "RSA", n: Buffer.from(key.key!.n!).toString("base64url"), e: Buffer.from(key.key!.e!).toString("base64url") };
  const kid = await calculateJwkThumbprint(jwk);
  const now = new Date().toISOString();
  // What a hand edit of config.json would do: make an unpublished key the signing key.
  config.publisher.idp.keys = config.publisher.idp.keys.map((k: Record<string, unknown>) => ({ ...k, state: "published" }));
  config.publisher.idp.keys.push({ kid, keyId: key.id, state: "active", since: now, jwk: { ...jwk, kid } });
  await writeConfig(config, dir);
  assert.not.ok((await publishedKids()).includes(kid));
  const { r, kid: used } = await emit(dir);
  assert.is(r.code, 1, describe(r));
  assert.is(used, undefined);
  assert.match(r.stderr, /AADSTS7000272/);
  assert.match(r.stderr, new RegExp(`kid ${kid}`));
  assert.match(r.stderr, /published first/);
});

R("phase 2 once the cache time is over: the new key signs, the old one stays published", async () => {
  await admin(sb, "PATCH", "/options", { entra: { jwksCacheTtlS: JWKS_CACHE_S } });
  await advanceSandboxClock((JWKS_CACHE_S + 1) * 1000);
  const r = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 1) * 1000) });
  assert.is(r.code, 0, describe(r));
  const { idp } = (await readConfig()).publisher;
  const byKid = Object.fromEntries(idp.keys.map((k: { kid: string }) => [k.kid, k]));
  assert.is(byKid[newKid].state, "active");
  assert.is(byKid[oldKid].state, "published");
  assert.ok(byKid[oldKid].deactivatedAt);
  assert.is(idp.keyJson.kid, newKid);
  assert.is(idp.keyId, byKid[newKid].keyId);
  // Both keys were published in phase 1; phase 2 leaves the JWKS as it is.
  assert.equal((await publishedKids()).sort(), [newKid, oldKid].sort());
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, newKid);
});

R("phase 3 refuses to run before the longest assertion lifetime is over", async () => {
  const before = await readFile(configPath(), "utf8");
  const r = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 2) * 1000) });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Cannot retire the old key yet \(phase 3 of 3\)/);
  assert.match(r.stderr, /retireAfterSeconds/);
  assert.is(await readFile(configPath(), "utf8"), before);
  assert.equal((await publishedKids()).sort(), [newKid, oldKid].sort());
});

R("phase 3 after it: the old key leaves the JWKS, stays in config as retired; emissions go on", async () => {
  const r = await rotate({ METERING_ROTATION_NOW: at((JWKS_CACHE_S + 901 + 5) * 1000) });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /rotation complete/);
  assert.equal(await publishedKids(), [newKid]);
  const { idp } = (await readConfig()).publisher;
  const old = idp.keys.find((k: { kid: string }) => k.kid === oldKid);
  assert.is(old.state, "retired");
  assert.ok(old.retiredAt);
  await advanceSandboxClock((JWKS_CACHE_S + 1) * 1000);
  const { r: e, kid } = await emit();
  assert.is(e.code, 0, describe(e));
  assert.is(kid, newKid);
  // Every emission of the main data directory succeeded: one accepted event per hour.
  assert.is((await admin<unknown[]>(sb, "GET", "/metering/events")).length, 4);
});

R("0-isv-setup without --rotate-key keeps the rotation state and republishes the same JWKS", async () => {
  const before = await readFile(configPath(), "utf8");
  const r = await runScript("0-isv-setup.mts", [], { env });
  assert.is(r.code, 0, describe(r));
  assert.is(await readFile(configPath(), "utf8"), before);
  assert.equal(await publishedKids(), [newKid]);
});

R("--rotate-key with a malformed METERING_ROTATION_NOW is a usage error that changes nothing", async () => {
  const before = await readFile(configPath(), "utf8");
  const r = await rotate({ METERING_ROTATION_NOW: "tomorrow" });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /METERING_ROTATION_NOW/);
  assert.is(await readFile(configPath(), "utf8"), before);
});

R.after(() => sb.stop());
R.run();
