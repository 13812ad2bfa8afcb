import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from "jose";
import { readSettings } from "../../lib/core/settings.mts";
import { createFederatedTokenSource, METERING_SCOPE, toFederationError, type CredentialFactory } from "../../lib/identity/federation.mts";
import { FederationError, SigningError } from "../../lib/core/errors.mts";
import { makeTestKey } from "./_support.mts";

const ISSUER = "https://idpabc.blob.core.windows.net/public";
const identity = {
  tenantId: "44444444-4444-4444-8444-444444444444",
  clientId: "33333333-3333-4333-8333-333333333333",
  subject: "metering-submission-via-uami from t",
  audience: "api://AzureADTokenExchange",
};

const tokenKey = (await generateKeyPair("RS256")).privateKey;
/** An access token as Entra would issue it (signed by some key; only its claims matter here). */
function fakeAccessToken(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(tokenKey);
}

/** A credential factory that records calls and, like MSAL, calls getAssertion per token request. */
function recordingFactory(token: string, created: unknown[][], assertions: string[]): CredentialFactory {
  return (tenantId, clientId, getAssertion, options) => {
    created.push([tenantId, clientId, options]);
    return {
      getToken: async (scope: string | string[]) => {
        assert.is(scope, METERING_SCOPE);
        assertions.push(await getAssertion());
        return { token, expiresOnTimestamp: 1 };
      },
    };
  };
}

const source = suite("createFederatedTokenSource()");
source("signs an assertion with iss, sub, aud and kid and returns the token with its claims", async () => {
  const key = await makeTestKey("kid-1");
  const token = await fakeAccessToken({ aud: "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", oid: "o1" });
  const created: unknown[][] = [];
  const assertions: string[] = [];
  const tokens = createFederatedTokenSource({ issuer: ISSUER, signer: key.signer, settings: readSettings({}), createCredential: recordingFactory(token, created, assertions) });
  const result = await tokens.getToken(identity);
  assert.is(result.token, token);
  assert.equal(result.claims, { aud: "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", oid: "o1" });
  assert.equal(created, [[identity.tenantId, identity.clientId, { disableInstanceDiscovery: false }]]);
  assert.is(tokens.assertionsSigned, 1);
  assert.equal(decodeProtectedHeader(assertions[0]), { typ: "JWT", alg: "RS256", kid: "kid-1" });
  const { payload } = await jwtVerify(assertions[0], key.publicKey, { issuer: ISSUER, subject: identity.subject, audience: identity.audience });
  assert.ok(payload.exp! - payload.iat! <= 600);
});
source("reuses one signed assertion across MSAL's repeated getAssertion calls, and signs anew near expiry", async () => {
  const key = await makeTestKey();
  const token = await fakeAccessToken({});
  const assertions: string[] = [];
  let nowMs = Date.UTC(2026, 0, 1, 12);
  const tokens = createFederatedTokenSource({
    issuer: ISSUER, signer: key.signer, settings: readSettings({}), now: () => nowMs, assertionLifetimeS: 300,
    createCredential: recordingFactory(token, [], assertions),
  });
  await tokens.getToken(identity);
  await tokens.getToken(identity);
  await tokens.getToken(identity);
  assert.is(tokens.assertionsSigned, 1);
  assert.is(new Set(assertions).size, 1);
  nowMs += (300 - 60) * 1000; // inside the reuse margin: a fresh signature
  await tokens.getToken(identity);
  assert.is(tokens.assertionsSigned, 2);
  assert.is(new Set(assertions).size, 2);
});
source("one signed assertion serves every identity with the same subject and audience; METERING_ASSERTION_PER_IDENTITY signs one each", async () => {
  const key = await makeTestKey();
  const token = await fakeAccessToken({});
  const other = { ...identity, tenantId: "55555555-5555-4555-8555-555555555555", clientId: "66666666-6666-4666-8666-666666666666" };
  const elsewhere = { ...identity, subject: "another subject" };
  for (const [env, signed] of [[{}, 2], [{ METERING_ASSERTION_PER_IDENTITY: "true" }, 3]] as const) {
    const assertions: string[] = [];
    const created: unknown[][] = [];
    const tokens = createFederatedTokenSource({ issuer: ISSUER, signer: key.signer, settings: readSettings(env), createCredential: recordingFactory(token, created, assertions) });
    await Promise.all([tokens.getToken(identity), tokens.getToken(other), tokens.getToken(elsewhere)]);
    assert.is(created.length, 3, "still one credential (one token cache) per identity");
    assert.is(tokens.assertionsSigned, signed, JSON.stringify(env));
    assert.is(new Set(assertions).size, signed);
    const ofSubject = assertions.filter((a) => decodeJwt(a).sub === identity.subject);
    assert.is(ofSubject.length, 2);
    assert.is(new Set(ofSubject).size, signed === 2 ? 1 : 2, "the two identities with one subject: the same assertion unless per identity");
  }
});
source("does not reuse a failed signature", async () => {
  let calls = 0;
  const key = await makeTestKey();
  const flaky = { kid: key.signer.kid, sign: async (d: Uint8Array) => { if (calls++ === 0) throw new Error("vault unavailable"); return key.signer.sign(d); } };
  const tokens = createFederatedTokenSource({ issuer: ISSUER, signer: flaky, settings: readSettings({}), createCredential: recordingFactory(await fakeAccessToken({}), [], []) });
  try {
    await tokens.getToken(identity);
    assert.unreachable("the first signature fails");
  } catch (err) {
    assert.not.instance(err, assert.Assertion);
  }
  await tokens.getToken(identity);
  assert.is(calls, 2);
});
source("keeps one credential per (tenant, UAMI)", async () => {
  const key = await makeTestKey();
  const token = await fakeAccessToken({});
  const created: unknown[][] = [];
  const tokens = createFederatedTokenSource({ issuer: ISSUER, signer: key.signer, settings: readSettings({}), createCredential: recordingFactory(token, created, []) });
  await tokens.getToken(identity);
  await tokens.getToken(identity);
  await tokens.getToken({ ...identity, clientId: "66666666-6666-4666-8666-666666666666" });
  assert.is(created.length, 2);
});
source("forget() drops one identity's credential: the next token makes a new one, others are kept", async () => {
  const key = await makeTestKey();
  const token = await fakeAccessToken({});
  const created: unknown[][] = [];
  const tokens = createFederatedTokenSource({ issuer: ISSUER, signer: key.signer, settings: readSettings({}), createCredential: recordingFactory(token, created, []) });
  const other = { ...identity, clientId: "66666666-6666-4666-8666-666666666666" };
  await tokens.getToken(identity);
  await tokens.getToken(other);
  tokens.forget(identity);
  await tokens.getToken(other);
  assert.is(created.length, 2, "the other identity's credential is still there");
  await tokens.getToken(identity);
  assert.is(created.length, 3, "a new credential for the forgotten one");
});
source("passes disableInstanceDiscovery from METERING_DISABLE_INSTANCE_DISCOVERY", async () => {
  const key = await makeTestKey();
  const created: unknown[][] = [];
  const tokens = createFederatedTokenSource({
    issuer: ISSUER, signer: key.signer, settings: readSettings({ METERING_DISABLE_INSTANCE_DISCOVERY: "true" }),
    createCredential: recordingFactory(await fakeAccessToken({}), created, []),
  });
  await tokens.getToken(identity);
  assert.equal(created[0][2], { disableInstanceDiscovery: true });
});
source("maps an AuthenticationError to a FederationError with the AADSTS code and a fix", async () => {
  const key = await makeTestKey("kid-9");
  const authError = Object.assign(new Error("invalid_client Status code: 401"), {
    name: "AuthenticationError",
    statusCode: 401,
    errorResponse: { error: "invalid_client", errorDescription: "AADSTS700213: No matching federated identity record found for presented assertion subject 'x'.", errorCodes: [700213] },
  });
  const tokens = createFederatedTokenSource({
    issuer: ISSUER, signer: key.signer, settings: readSettings({}),
    createCredential: () => ({ getToken: () => Promise.reject(authError) }),
  });
  try {
    await tokens.getToken(identity);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, FederationError);
    const e = error as FederationError;
    assert.is(e.code, "ERR_FEDERATION");
    assert.is(e.aadsts, 700213);
    assert.is(e.oauthError, "invalid_client");
    assert.match(e.message, /^Cannot get a token for UAMI 33333333-.* in tenant 44444444-.*: AADSTS700213: No federated credential on the UAMI has the assertion's subject\. The credential's subject must be exactly "metering-submission-via-uami from t"/);
    assert.match(e.detail!, /No matching federated identity record/);
    assert.is(e.cause, authError);
  }
});
source("returns the SigningError when Key Vault refused to sign", async () => {
  const signing = new SigningError("Cannot sign with Key Vault key k: forbidden");
  const tokens = createFederatedTokenSource({
    issuer: ISSUER, signer: { kid: "k", sign: () => Promise.reject(signing) }, settings: readSettings({}),
    createCredential: (_t, _c, getAssertion) => ({
      getToken: async () => {
        try {
          await getAssertion();
        } catch (cause) {
          // @azure/identity wraps callback failures; the SigningError survives as a cause.
          throw Object.assign(new Error("AuthenticationRequiredError"), { cause });
        }
        return null;
      },
    }),
  });
  try {
    await tokens.getToken(identity);
    assert.unreachable();
  } catch (error) {
    assert.is(error, signing);
  }
});
source.run();

const mapError = suite("toFederationError()");
mapError("reads MSAL's ServerError in the cause chain", () => {
  const server = Object.assign(new Error("invalid_client: AADSTS7000272: The certificate with identifier k"), {
    name: "ServerError", errorCode: "invalid_client", errorNo: "7000272", errorMessage: "AADSTS7000272: The certificate with identifier k ...",
  });
  const wrapped = Object.assign(new Error("Authentication required"), { name: "AuthenticationRequiredError", cause: server });
  const e = toFederationError(wrapped, { ...identity, issuer: ISSUER, kid: "k" }) as FederationError;
  assert.is(e.aadsts, 7000272);
  assert.is(e.oauthError, "invalid_client");
  assert.match(e.message, /JWKS at https:\/\/idpabc\.blob\.core\.windows\.net\/public\/\.well-known\/jwks\.json must contain kid k, /);
});
mapError("says Entra could not be reached for MSAL's network_error", () => {
  const client = Object.assign(new Error("network_error: See https://aka.ms/msal.js.errors#network_error for details"), { name: "ClientAuthError", errorCode: "network_error" });
  const e = toFederationError(Object.assign(new Error("x"), { cause: client }), identity) as FederationError;
  assert.is(e.oauthError, "network_error");
  assert.match(e.message, /: Entra at https:\/\/\S+ could not be reached or answered with a server error; try again later$/);
});
mapError("keeps the first line of an error without an AADSTS code", () => {
  const e = toFederationError(new Error("connect ECONNREFUSED 127.0.0.1:1\nmore"), identity) as FederationError;
  assert.instance(e, FederationError);
  assert.is(e.aadsts, undefined);
  assert.match(e.message, /: connect ECONNREFUSED 127\.0\.0\.1:1$/);
});
mapError("names the publisher app (app id, tenant) and its fix, never a UAMI, for kind publisher-app", () => {
  const server = Object.assign(new Error("invalid_client: AADSTS700213: No matching federated identity record found"), {
    name: "ServerError", errorCode: "invalid_client", errorNo: "700213", errorMessage: "AADSTS700213: No matching federated identity record found",
  });
  const app = { ...identity, kind: "publisher-app" as const, subject: "metering-submission-via-publisher-app from t" };
  const e = toFederationError(server, { ...app, issuer: ISSUER }) as FederationError;
  assert.is(e.aadsts, 700213);
  assert.match(e.message, /^Cannot get a token for the publisher app 33333333-3333-4333-8333-333333333333 in tenant 44444444-4444-4444-8444-444444444444: AADSTS700213: No federated credential on the publisher app /);
  assert.match(e.message, /run 0-publisher-app --app-id 33333333-3333-4333-8333-333333333333 again\.$/);
  assert.not.match(e.message, /UAMI|1-connect-customer/);
  const plain = toFederationError(new Error("connect ECONNREFUSED 127.0.0.1:1"), app) as FederationError;
  assert.match(plain.message, /^Cannot get a token for the publisher app 3{8}-/);
  // A customer's UAMI keeps its own words.
  assert.match((toFederationError(server, identity) as FederationError).message, /^Cannot get a token for UAMI .*1-connect-customer with --force/);
});
mapError.run();
