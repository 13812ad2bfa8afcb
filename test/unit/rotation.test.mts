import { suite } from "uvu";
import * as assert from "uvu/assert";
import { configProblems, idpKeysOf, idpKeysProblems, publishedKeysOf, signingKeyOf, withoutCustomer, type IdpConfig, type MeteringConfig } from "../../lib/state/config.mts";
import { RotationNotDueError, UsageError } from "../../lib/core/errors.mts";
import { buildJwks, type PublicJwk } from "../../lib/issuer/oidc.mts";
import {
  assertRotationDue, DEFAULT_JWKS_CACHE_S, DEFAULT_RETIRE_AFTER_S, formatDuration, isLegacyKid, MAX_JWKS_KEYS, nextRotationStep, rotationNow, withActivatedKey,
  withNormalizedKey, withPublishedKey, withRetiredKeys,
} from "../../lib/issuer/rotation.mts";
import { publishedJwksOf } from "../../lib/issuer/rotate-key.mts";
import { bashEraConfig, CUSTOMER_SUB } from "./_support.mts";
import { readSettings } from "../../lib/core/settings.mts";

const T0 = Date.parse("2026-03-01T00:00:00Z");
const bashIdp = () => bashEraConfig().publisher.idp as IdpConfig;
const newKey = (kid = "kid-new") => ({ kid, keyId: `https://idpabc.vault.azure.net/keys/idpkey/${"b".repeat(32)}`, jwk: { kty: "RSA", kid, n: "bmV3", e: "AQAB" } });

const keys = suite("signingKeyOf() / idpKeysOf()");
keys("a bash-era idp without keys is one active key: keyId and keyJson.kid", () => {
  const idp = bashIdp();
  assert.equal(signingKeyOf(idp), { keyId: idp.keyId, kid: idp.keyJson.kid });
  assert.equal(idpKeysOf(idp).map((k) => k.state), ["active"]);
});
keys("with a keys list the active entry signs, whatever keyId says", () => {
  const idp = withActivatedKey(withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 }), { kid: "kid-new", nowMs: T0 + 1 });
  assert.equal(signingKeyOf({ ...idp, keyId: "https://stale.example/keys/x/1" }), { keyId: newKey().keyId, kid: "kid-new" });
});
keys("publishedKeysOf lists the active key first and leaves retired ones out", () => {
  let idp = withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 });
  assert.equal(publishedKeysOf(idp).map((k) => k.kid), [bashIdp().keyJson.kid, "kid-new"]);
  idp = withRetiredKeys(withActivatedKey(idp, { kid: "kid-new", nowMs: T0 + 1 }), { nowMs: T0 + 2 });
  assert.equal(publishedKeysOf(idp).map((k) => k.kid), ["kid-new"]);
  assert.equal(publishedJwksOf(idp), [{ kty: "RSA", use: "sig", alg: "RS256", kid: "kid-new", n: "bmV3", e: "AQAB" }]);
});
keys.run();

const problems = suite("idpKeysProblems()");
problems("accepts what the rotation writes and names broken entries", () => {
  const idp = withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 });
  assert.equal(idpKeysProblems(idp.keys), []);
  const config = bashEraConfig();
  config.publisher.idp = idp;
  assert.equal(configProblems(config, { stage: "idp" }), []);
  assert.equal(idpKeysProblems([{ ...idp.keys![0], state: "published" }, { ...idp.keys![1], state: "sleeping" }]), [
    'publisher.idp.keys[1].state: expected one of published, active, retired, got "sleeping"',
    'publisher.idp.keys: expected exactly one key with state "active", found 0',
  ]);
  assert.equal(idpKeysProblems("x"), ['publisher.idp.keys: expected an array, got "x"']);
});
problems("a jwk whose kid differs from the entry's is named", () => {
  const idp = withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 });
  const list = idpKeysProblems([idp.keys![0], { ...idp.keys![1], jwk: { ...idp.keys![1].jwk, kid: "other" } }]);
  assert.equal(list, ['publisher.idp.keys[1].jwk.kid: expected the entry\'s kid "kid-new", got "other"']);
});
problems("waiting times must be whole seconds", () => {
  const config = bashEraConfig();
  config.publisher.idp.jwksCacheSeconds = -1;
  assert.equal(configProblems(config, { stage: "idp" }), ["publisher.idp.jwksCacheSeconds: expected a whole number of seconds >= 0, got -1"]);
});
problems.run();

const plan = suite("nextRotationStep() and the phase transitions");
plan("phase 1 may run at once; phase 2 waits the JWKS cache time after publishing", () => {
  const thumbprintIdp = withRetiredKeys(withActivatedKey(withPublishedKey(bashIdp(), { ...newKey("thumb"), nowMs: T0 }), { kid: "thumb", nowMs: T0 }), { nowMs: T0 });
  assert.equal(nextRotationStep(thumbprintIdp), { phase: "publish", number: 1, dueAtMs: 0 });
  const published = withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 });
  assert.equal(published.keys!.map((k) => [k.kid, k.state]), [[bashIdp().keyJson.kid, "active"], ["kid-new", "published"]]);
  assert.is(published.keyJson.kid, bashIdp().keyJson.kid, "keyJson names the signing key");
  const step = nextRotationStep(published);
  assert.is(step.phase, "activate");
  assert.is(step.key!.kid, "kid-new");
  assert.is(step.dueAtMs, T0 + DEFAULT_JWKS_CACHE_S * 1000);
  assert.is(nextRotationStep({ ...published, jwksCacheSeconds: 60 }).dueAtMs, T0 + 60_000);
});
plan("a bash-era key (its kid the versioned key URL) is migrated: phase 1 publishes the thumbprint kid of the same version", () => {
  const legacy = bashIdp();
  assert.ok(isLegacyKid(legacy.keyJson.kid));
  assert.not.ok(isLegacyKid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
  const step = nextRotationStep(legacy);
  assert.equal([step.phase, step.number, step.dueAtMs, step.migration, step.key!.kid], ["publish", 1, 0, true, legacy.keyJson.kid]);
  const normalized = withNormalizedKey(legacy, { kid: legacy.keyJson.kid, jwk: { kty: "RSA", kid: "ignored", n: "bmV3", e: "AQAB", use: "sig", alg: "RS256" } });
  assert.equal(normalized.keys!.map((k) => [k.kid, k.jwk.kid, k.jwk.n, k.jwk.use]), [[legacy.keyJson.kid, legacy.keyJson.kid, "bmV3", "sig"]]);
  assert.is(normalized.keyJson.kid, legacy.keyJson.kid, "the legacy kid keeps signing");
  const published = withPublishedKey(normalized, { kid: "thumb", keyId: legacy.keyId, jwk: { kty: "RSA", kid: "thumb", n: "bmV3", e: "AQAB" }, nowMs: T0 });
  assert.equal(published.keys!.map((k) => [k.kid, k.keyId, k.state]), [[legacy.keyJson.kid, legacy.keyId, "active"], ["thumb", legacy.keyId, "published"]]);
  const next = nextRotationStep(published);
  assert.equal([next.phase, next.dueAtMs, next.migration], ["activate", T0 + DEFAULT_JWKS_CACHE_S * 1000, undefined], "then the rotation's own waiting rules");
});
plan("phase 2 swaps the signing key; phase 3 waits the retire time after it", () => {
  const active = withActivatedKey(withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 }), { kid: "kid-new", nowMs: T0 + 5_000 });
  assert.equal(active.keys!.map((k) => k.state), ["published", "active"]);
  assert.is(active.keys![0].deactivatedAt, new Date(T0 + 5_000).toISOString());
  assert.is(active.keyId, newKey().keyId);
  assert.is(active.keyJson.kid, "kid-new");
  const step = nextRotationStep(active);
  assert.is(step.phase, "retire");
  assert.is(step.dueAtMs, T0 + 5_000 + DEFAULT_RETIRE_AFTER_S * 1000);
  assert.is(DEFAULT_RETIRE_AFTER_S, 900);
  const retired = withRetiredKeys(active, { nowMs: T0 + 10_000_000 });
  assert.equal(retired.keys!.map((k) => k.state), ["retired", "active"]);
  assert.equal(nextRotationStep(retired), { phase: "publish", number: 1, dueAtMs: 0 });
});
plan("publishing a key already in the JWKS is refused", () => {
  const once = withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 });
  assert.throws(() => withPublishedKey(once, { ...newKey(), nowMs: T0 }), (e: Error) => e instanceof TypeError && /already published/.test(e.message));
});
plan("the JWKS never holds more than 100 keys", () => {
  let idp = bashIdp();
  for (let i = 1; i < MAX_JWKS_KEYS; i++) idp = withPublishedKey(idp, { ...newKey(`kid-${i}`), nowMs: T0 });
  assert.is(publishedKeysOf(idp).length, 100);
  assert.throws(() => withPublishedKey(idp, { ...newKey("kid-101"), nowMs: T0 }), (e: Error) => e instanceof RangeError && /100/.test(e.message));
  const jwk = (kid: string): PublicJwk => ({ kty: "RSA", use: "sig", alg: "RS256", kid, n: "x", e: "AQAB" });
  assert.is(buildJwks(Array.from({ length: 100 }, (_, i) => jwk(String(i)))).keys.length, 100);
  assert.throws(() => buildJwks(Array.from({ length: 101 }, (_, i) => jwk(String(i)))), RangeError);
});
plan.run();

const due = suite("assertRotationDue() / rotationNow() / formatDuration()");
due("refuses early with the time it may run, in ISO and in words", () => {
  const step = nextRotationStep(withPublishedKey(bashIdp(), { ...newKey(), nowMs: T0 }));
  try {
    assertRotationDue(step, T0 + 60_000);
    assert.unreachable("should refuse");
  } catch (e) {
    assert.instance(e, RotationNotDueError);
    assert.is((e as RotationNotDueError).code, "ERR_ROTATION_NOT_DUE");
    assert.is((e as RotationNotDueError).dueAtMs, T0 + 86_400_000);
    assert.match((e as Error).message, /^Cannot sign with the new key yet \(phase 2 of 3\): Entra may keep the previous JWKS cached for up to 86400 s/);
    assert.match((e as Error).message, /after 2026-03-02T00:00:00\.000Z \(in 23 h 59 min\)$/);
  }
  assertRotationDue(step, T0 + 86_400_000);
});
due("METERING_ROTATION_NOW replaces the clock; anything but ISO 8601 is a usage error", () => {
  assert.is(rotationNow(readSettings({}), () => 42), 42);
  assert.is(rotationNow(readSettings({ METERING_ROTATION_NOW: "2026-03-01T00:00:00Z" })), T0);
  assert.throws(() => rotationNow(readSettings({ METERING_ROTATION_NOW: "tomorrow" })), (e: Error) => e instanceof UsageError && /METERING_ROTATION_NOW/.test(e.message));
  assert.throws(() => rotationNow(readSettings({ METERING_ROTATION_NOW: "1700000000" })), (e: Error) => e instanceof UsageError);
});
due("durations read as a person says them", () => {
  assert.is(formatDuration(45_000), "45 s");
  assert.is(formatDuration(3_600_000 + 5 * 60_000), "1 h 5 min");
  assert.is(formatDuration(2 * 86_400_000 + 3_600_000), "2 d 1 h");
  assert.is(formatDuration(-5), "0 s");
});
due.run();

const offboard = suite("withoutCustomer()");
offboard("removes one customer (case-insensitively) and an emptied subscription", () => {
  const config = bashEraConfig() as unknown as MeteringConfig;
  const after = withoutCustomer(config, { subscriptionId: CUSTOMER_SUB.toUpperCase(), managedResourceGroup: "MRG-APP1-20240101" });
  assert.equal(after.customers, {});
  assert.is(Object.keys(config.customers).length, 1, "the input is not changed");
  assert.is(withoutCustomer(config, { subscriptionId: CUSTOMER_SUB, managedResourceGroup: "other" }), config);
});
offboard.run();
