import { SignJWT, generateKeyPair } from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { formatTokenSummary, scopeForResource, summarizeToken } from "../../lib/identity/token-info.mts";
import { UsageError } from "../../lib/core/errors.mts";

const scope = suite("scopeForResource()");
scope("appends /.default to resource URIs and app ids, once", () => {
  assert.is(scopeForResource("https://vault.azure.net"), "https://vault.azure.net/.default");
  assert.is(scopeForResource("https://management.azure.com/"), "https://management.azure.com/.default");
  assert.is(scopeForResource("20e940b3-4c77-4b0b-9a53-9e16a1b010a7"), "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default");
  assert.is(scopeForResource("api://my-app/.default"), "api://my-app/.default");
});
scope("Service Bus gets the SDKs' literal // scope; short names map to their scopes", () => {
  assert.is(scopeForResource("https://servicebus.azure.net"), "https://servicebus.azure.net//.default");
  assert.is(scopeForResource("https://contoso.servicebus.windows.net/"), "https://servicebus.azure.net//.default");
  assert.is(scopeForResource("ARM"), "https://management.azure.com/.default");
  assert.is(scopeForResource("metering"), "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default");
});
scope("anything else is a usage error", () => {
  for (const bad of ["", "vault.azure.net", "two words", "not-a-guid"]) {
    try {
      scopeForResource(bad);
      assert.unreachable(bad);
    } catch (e) {
      assert.instance(e, UsageError);
    }
  }
});
scope.run();

const summary = suite("summarizeToken() / formatTokenSummary()");
summary("claims, expiry and minutes left; never the token", async () => {
  const { privateKey } = await generateKeyPair("RS256");
  const now = Date.parse("2026-01-01T00:00:00Z");
  const token = await new SignJWT({ aud: "https://vault.azure.net", appid: "app-1", tid: "t-1" }).setProtectedHeader({ alg: "RS256" })
    .setIssuedAt(now / 1000).setExpirationTime(now / 1000 + 3600).sign(privateKey);
  const s = summarizeToken(token, { now });
  assert.is(s.claims.appid, "app-1");
  assert.is(s.expiresOn, "2026-01-01T01:00:00.000Z");
  assert.is(s.expiresInS, 3600);
  const text = formatTokenSummary(s);
  assert.match(text, /^aud\s+https:\/\/vault\.azure\.net$/m);
  assert.match(text, /in 60 min/);
  assert.not.match(text, /eyJ/);
});
summary("an opaque token keeps the reported expiry", () => {
  const s = summarizeToken("opaque", { now: 0, expiresOnTimestamp: 120_000 });
  assert.equal(s.claims, {});
  assert.is(s.expiresInS, 120);
});
summary.run();
