import { suite } from "uvu";
import * as assert from "uvu/assert";
import { base64url, calculateJwkThumbprint } from "jose";
import {
  assertIssuerUrl, buildDiscoveryDocument, buildJwks, buildPublicJwk, fetchJsonDocument, issuerDocuments,
  issuerFromBlobEndpoint, verifyIssuerSetup, type FetchLike,
} from "../../lib/issuer/oidc.mts";
import { IssuerFetchError, IssuerVerificationError } from "../../lib/core/errors.mts";
import { makeTestKey } from "./_support.mts";

const ISSUER = "https://idpabc.blob.core.windows.net/public";

/** A fetch that serves fixed documents by URL and records what was asked. */
function fakeFetch(docs: Record<string, unknown>, calls: string[] = []): FetchLike {
  return async (url) => {
    calls.push(String(url));
    if (!(String(url) in docs)) return new Response("<Error>BlobNotFound</Error>", { status: 404 });
    const body = docs[String(url)];
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  };
}

const fromBlob = suite("issuerFromBlobEndpoint()");
fromBlob("joins the endpoint without trailing slash and the container", () => {
  assert.is(issuerFromBlobEndpoint({ blobEndpoint: "https://idpabc.blob.core.windows.net/", containerName: "public" }), ISSUER);
  assert.is(issuerFromBlobEndpoint({ blobEndpoint: "https://127.0.0.1:10000/devstoreaccount1", containerName: "public" }), "https://127.0.0.1:10000/devstoreaccount1/public");
});
fromBlob.run();

const assertUrl = suite("assertIssuerUrl()");
assertUrl("accepts an https URL without trailing slash", () => {
  assertIssuerUrl(ISSUER);
});
assertUrl("rejects http, a trailing slash, whitespace, a query and non-URLs", () => {
  for (const bad of ["http://x.example/public", `${ISSUER}/`, ` ${ISSUER}`, `${ISSUER}?a=1`, "public", ""]) {
    try {
      assertIssuerUrl(bad);
      assert.unreachable(bad);
    } catch (error) {
      assert.instance(error, TypeError);
      assert.match((error as Error).message, /^Cannot use issuer/);
    }
  }
});
assertUrl.run();

const discovery = suite("buildDiscoveryDocument()");
discovery("has the issuer string and jwks_uri under it, RS256 id_token", () => {
  assert.equal(buildDiscoveryDocument({ issuer: ISSUER }), {
    issuer: ISSUER,
    jwks_uri: `${ISSUER}/.well-known/jwks.json`,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
  });
});
discovery.run();

const jwk = suite("buildPublicJwk()");
jwk("returns kty RSA, use sig, alg RS256, n, e and the RFC 7638 thumbprint as kid", async () => {
  const key = await makeTestKey();
  const result = await buildPublicJwk(key.publicJwk);
  assert.equal(Object.keys(result), ["kty", "use", "alg", "kid", "n", "e"]);
  assert.is(result.kty, "RSA");
  assert.is(result.use, "sig");
  assert.is(result.alg, "RS256");
  assert.is(result.n, key.publicJwk.n);
  assert.is(result.e, "AQAB");
  assert.is(result.kid, await calculateJwkThumbprint({ kty: "RSA", n: key.publicJwk.n, e: key.publicJwk.e }));
});
jwk("takes bytes as Key Vault returns them and drops a leading zero byte", async () => {
  const key = await makeTestKey();
  const n = base64url.decode(key.publicJwk.n);
  const padded = new Uint8Array(n.length + 1);
  padded.set(n, 1);
  const result = await buildPublicJwk({ n: padded, e: base64url.decode(key.publicJwk.e) });
  assert.is(result.n, key.publicJwk.n);
  assert.is(result.kid, (await buildPublicJwk(key.publicJwk)).kid);
});
jwk("rejects an empty or short modulus", async () => {
  for (const n of ["", "AQAB", base64url.encode(new Uint8Array(255).fill(0xff))]) {
    try {
      await buildPublicJwk({ n, e: "AQAB" });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, TypeError);
      assert.match((error as Error).message, /^Cannot build JWK: /);
    }
  }
});
jwk.run();

const jwks = suite("buildJwks()");
jwks("keeps only the published members", () => {
  const k = { kty: "RSA", use: "sig", alg: "RS256", kid: "a", n: "n", e: "e", d: "secret" } as any;
  assert.equal(buildJwks([k]), { keys: [{ kty: "RSA", use: "sig", alg: "RS256", kid: "a", n: "n", e: "e" }] });
});
jwks("issuerDocuments() names both blob paths", () => {
  assert.equal(Object.keys(issuerDocuments({ issuer: ISSUER, keys: [] })), [".well-known/openid-configuration", ".well-known/jwks.json"]);
});
jwks.run();

const fetchDoc = suite("fetchJsonDocument()");
fetchDoc("returns parsed JSON", async () => {
  assert.equal(await fetchJsonDocument("https://x/a", { fetch: fakeFetch({ "https://x/a": { ok: 1 } }) }), { ok: 1 });
});
fetchDoc("a non-200 is an IssuerFetchError with the status", async () => {
  try {
    await fetchJsonDocument("https://x/missing", { fetch: fakeFetch({}) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerFetchError);
    assert.is((error as IssuerFetchError).status, 404);
    assert.match((error as Error).message, /^Cannot fetch https:\/\/x\/missing: HTTP 404/);
  }
});
fetchDoc("a body that is not JSON is an IssuerFetchError", async () => {
  try {
    await fetchJsonDocument("https://x/a", { fetch: fakeFetch({ "https://x/a": "<html>" }) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerFetchError);
    assert.match((error as Error).message, /not JSON/);
  }
});
fetchDoc("a network failure is an IssuerFetchError", async () => {
  try {
    await fetchJsonDocument("https://x/a", { fetch: () => Promise.reject(new TypeError("fetch failed")) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerFetchError);
    assert.is((error as Error).message, "Cannot fetch https://x/a: fetch failed");
  }
});
fetchDoc.run();

const verify = suite("verifyIssuerSetup()");
async function published(kid?: string) {
  const key = await makeTestKey();
  const jwk = await buildPublicJwk(key.publicJwk);
  const signer = { kid: kid ?? jwk.kid, sign: key.signer.sign };
  const docs: Record<string, unknown> = {
    [`${ISSUER}/.well-known/openid-configuration`]: buildDiscoveryDocument({ issuer: ISSUER }),
    [`${ISSUER}/.well-known/jwks.json`]: buildJwks([jwk]),
  };
  return { key, jwk, signer, docs };
}

verify("fetches both documents and verifies a signed test JWT", async () => {
  const { signer, docs, jwk } = await published();
  const calls: string[] = [];
  const result = await verifyIssuerSetup({ issuer: ISSUER, signer, fetch: fakeFetch(docs, calls) });
  assert.is(result.kid, jwk.kid);
  assert.is(result.jwksUri, `${ISSUER}/.well-known/jwks.json`);
  assert.is(result.testClaims.iss, ISSUER);
  assert.equal(calls, [`${ISSUER}/.well-known/openid-configuration`, `${ISSUER}/.well-known/jwks.json`, `${ISSUER}/.well-known/jwks.json`]);
});
verify("fails when the signer's kid is not published", async () => {
  const { signer, docs } = await published("another-kid");
  try {
    await verifyIssuerSetup({ issuer: ISSUER, signer, fetch: fakeFetch(docs) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerVerificationError);
    assert.match((error as Error).message, /JWKS has no key with kid "another-kid"/);
  }
});
verify("fails when the discovery issuer differs (trailing slash)", async () => {
  const { signer, docs } = await published();
  (docs[`${ISSUER}/.well-known/openid-configuration`] as any).issuer = `${ISSUER}/`;
  try {
    await verifyIssuerSetup({ issuer: ISSUER, signer, fetch: fakeFetch(docs) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerVerificationError);
    assert.match((error as Error).message, /discovery issuer is ".*\/public\/", expected/);
  }
});
verify("fails when the published key is not the signing key", async () => {
  const { signer, docs, jwk } = await published();
  const other = await buildPublicJwk((await makeTestKey()).publicJwk);
  docs[`${ISSUER}/.well-known/jwks.json`] = buildJwks([{ ...other, kid: jwk.kid }]);
  try {
    await verifyIssuerSetup({ issuer: ISSUER, signer, fetch: fakeFetch(docs) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerVerificationError);
    assert.match((error as Error).message, /^Cannot verify a test JWT signed by key/);
  }
});
verify("fails when a document is not public", async () => {
  const { signer } = await published();
  try {
    await verifyIssuerSetup({ issuer: ISSUER, signer, fetch: fakeFetch({}) });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, IssuerFetchError);
    assert.is((error as IssuerFetchError).status, 404);
  }
});
verify.run();

const web = suite("issuerFromWebEndpoint() / issuerLocationOf()");
web("the static website endpoint without its slash is the issuer; documents go to $web at the recorded blob endpoint", async () => {
  const { issuerFromWebEndpoint, STATIC_WEBSITE_CONTAINER } = await import("../../lib/issuer/oidc.mts");
  const { issuerLocationOf } = await import("../../lib/issuer/rotate-key.mts");
  assert.is(issuerFromWebEndpoint({ webEndpoint: "https://idpabc.z6.web.core.windows.net/" }), "https://idpabc.z6.web.core.windows.net");
  assert.throws(() => issuerFromWebEndpoint({ webEndpoint: "http://idpabc.z6.web.core.windows.net/" }), /https URL/);
  const idp = { issuer: "https://idpabc.z6.web.core.windows.net", issuerHost: "static-website", blobEndpoint: "https://idpabc.blob.core.windows.net/" };
  assert.equal(issuerLocationOf({ publisher: { idp, optional: { containerName: "$web" } }, customers: {} } as never),
    { blobEndpoint: "https://idpabc.blob.core.windows.net/", containerName: STATIC_WEBSITE_CONTAINER });
  assert.equal(issuerLocationOf({ publisher: { idp: { issuer: ISSUER }, optional: { containerName: "public" } }, customers: {} } as never),
    { blobEndpoint: "https://idpabc.blob.core.windows.net/", containerName: "public" });
});
web.run();

const legacy = suite("issuerDocumentsOf() / legacyJwksPathOf()");
legacy("the bash tool's JWKS path gets the same JWKS while a legacy kid is published, and not after", async () => {
  const { issuerDocumentsOf, legacyJwksPathOf } = await import("../../lib/issuer/rotate-key.mts");
  const key = await makeTestKey();
  const jwk = { ...key.publicJwk, kid: "https://idpabc.vault.azure.net/keys/idpkey/0123", use: "sig", alg: "RS256" } as never;
  const entry = (kid: string, state: string) => ({ kid, keyId: "https://idpabc.vault.azure.net/keys/idpkey/0123", state, since: "2026-01-01T00:00:00Z", jwk: { ...(jwk as object), kid } });
  const idp = (states: [string, string]) => ({
    issuer: ISSUER, keyUri: "k", keyId: "k", keyJson: jwk, legacyJwksPath: "jwks_uri/keys",
    keys: [entry("https://idpabc.vault.azure.net/keys/idpkey/0123", states[0]), entry("thumb", states[1])],
  });
  const during = issuerDocumentsOf(idp(["active", "published"]) as never);
  assert.equal(Object.keys(during).sort(), [".well-known/jwks.json", ".well-known/openid-configuration", "jwks_uri/keys"]);
  assert.equal(during["jwks_uri/keys"], during[".well-known/jwks.json"]);
  const after = issuerDocumentsOf(idp(["retired", "active"]) as never);
  assert.equal(Object.keys(after).sort(), [".well-known/jwks.json", ".well-known/openid-configuration"]);
  const bashDiscovery = { [`${ISSUER}/.well-known/openid-configuration`]: { issuer: ISSUER, jwks_uri: `${ISSUER}/jwks_uri/keys` } };
  assert.is(await legacyJwksPathOf({ issuer: ISSUER, fetch: fakeFetch(bashDiscovery) }), "jwks_uri/keys");
  const ours = { [`${ISSUER}/.well-known/openid-configuration`]: { issuer: ISSUER, jwks_uri: `${ISSUER}/.well-known/jwks.json` } };
  assert.is(await legacyJwksPathOf({ issuer: ISSUER, fetch: fakeFetch(ours) }), undefined);
  const elsewhere = { [`${ISSUER}/.well-known/openid-configuration`]: { issuer: ISSUER, jwks_uri: "https://other.example/keys" } };
  assert.is(await legacyJwksPathOf({ issuer: ISSUER, fetch: fakeFetch(elsewhere) }), undefined);
  assert.is(await legacyJwksPathOf({ issuer: ISSUER, fetch: fakeFetch({}) }), undefined, "no discovery document: nothing to keep");
});
legacy.run();
