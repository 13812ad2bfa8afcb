import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { buildAssertionClaims, buildClientAssertion, MAX_ASSERTION_LIFETIME_S } from "../../lib/identity/assertion.mts";
import { makeTestKey } from "./_support.mts";

const NOW = Date.parse("2024-05-01T13:45:10.900Z");
const base = { issuer: "https://idp.blob.core.windows.net/public", subject: "metering-submission-via-uami from t" };

const claims = suite("buildAssertionClaims()");
claims("sets iss, sub, aud, iat = nbf = now and exp = now + lifetime", () => {
  const c = buildAssertionClaims({ ...base, now: NOW, lifetimeS: 300, jti: "j1" });
  assert.equal(c, {
    iss: base.issuer, sub: base.subject, aud: "api://AzureADTokenExchange",
    iat: 1714571110, nbf: 1714571110, exp: 1714571410, jti: "j1",
  });
});
claims("generates a fresh jti per call", () => {
  const a = buildAssertionClaims({ ...base, now: NOW });
  const b = buildAssertionClaims({ ...base, now: NOW });
  assert.match(a.jti, /^[0-9a-f-]{36}$/);
  assert.is.not(a.jti, b.jti);
});
claims("refuses lifetimes above 10 minutes or below 1 s", () => {
  for (const lifetimeS of [MAX_ASSERTION_LIFETIME_S + 1, 0, -5, 1.5, 3600]) {
    try {
      buildAssertionClaims({ ...base, now: NOW, lifetimeS });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RangeError);
      assert.match((error as Error).message, /^Cannot build assertion: lifetimeS must be an integer from 1 to 600/);
    }
  }
  assert.is(buildAssertionClaims({ ...base, now: NOW, lifetimeS: 600 }).exp - 1714571110, 600);
});
claims("requires issuer and subject", () => {
  try {
    buildAssertionClaims({ issuer: "", subject: "s" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, TypeError);
  }
});
claims.run();

const build = suite("buildClientAssertion()");
build("signs RS256 with typ JWT and the signer's kid, verifiable with the public key", async () => {
  const key = await makeTestKey("kid-123");
  const jwt = await buildClientAssertion({ ...base, audience: "api://AzureADTokenExchange", now: Date.now(), signer: key.signer });
  assert.equal(decodeProtectedHeader(jwt), { typ: "JWT", alg: "RS256", kid: "kid-123" });
  const { payload } = await jwtVerify(jwt, key.publicKey, { issuer: base.issuer, audience: "api://AzureADTokenExchange", subject: base.subject, algorithms: ["RS256"] });
  assert.ok(payload.jti);
  assert.is(payload.exp! - payload.iat!, 300);
});
build("a different key does not verify it", async () => {
  const key = await makeTestKey();
  const other = await makeTestKey();
  const jwt = await buildClientAssertion({ ...base, signer: key.signer });
  try {
    await jwtVerify(jwt, other.publicKey);
    assert.unreachable();
  } catch (error) {
    assert.is((error as { code?: string }).code, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
  }
});
build.run();
