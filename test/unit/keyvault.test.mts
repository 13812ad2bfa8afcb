import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeKeyVaultError, getKeyVaultPublicKey, keyVaultClientOptions, parseKeyId } from "../../lib/identity/signing-key.mts";
import { SigningError } from "../../lib/core/errors.mts";
import { DEFAULT_RETRY_OPTIONS } from "../../lib/core/http.mts";
import { readSettings } from "../../lib/core/settings.mts";

const options = suite("keyVaultClientOptions()");
options("disables challenge resource verification only for the exact value 'true'", () => {
  assert.is(keyVaultClientOptions(readSettings({ METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION: "true" })).disableChallengeResourceVerification, true);
  assert.is(keyVaultClientOptions(readSettings({ METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION: "1" })).disableChallengeResourceVerification, false);
  assert.is(keyVaultClientOptions(readSettings({ METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION: "TRUE" })).disableChallengeResourceVerification, false);
  assert.is(keyVaultClientOptions(readSettings({})).disableChallengeResourceVerification, false);
});
options("carries our retry options and the per-try timeout policy", () => {
  const o = keyVaultClientOptions(readSettings({}));
  assert.equal(o.retryOptions, DEFAULT_RETRY_OPTIONS);
  assert.equal(o.additionalPolicies.map((p) => [p.policy.name, p.position]), [["meteringTryTimeout", "perRetry"]]);
  assert.equal(Object.keys(o).sort(), ["additionalPolicies", "disableChallengeResourceVerification", "retryOptions"]);
});
options.run();

const parse = suite("parseKeyId()");
parse("splits a versioned key id into vault URL, name and version", () => {
  assert.equal(parseKeyId("https://idpabc.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef"), {
    vaultUrl: "https://idpabc.vault.azure.net", name: "idpkey", version: "0123456789abcdef0123456789abcdef",
  });
});
parse("keeps a port and leaves the version out for an unversioned id", () => {
  assert.equal(parseKeyId("https://127.0.0.1:4443/keys/idpkey"), { vaultUrl: "https://127.0.0.1:4443", name: "idpkey" });
});
parse("rejects what is not a key id with a SigningError naming the expected shape", () => {
  for (const bad of ["not a url", "https://v.vault.azure.net/secrets/x/1", "https://v.vault.azure.net/keys", "https://v.vault.azure.net/keys/a/b/c"]) {
    try {
      parseKeyId(bad);
      assert.unreachable(`accepted ${bad}`);
    } catch (err) {
      assert.instance(err, SigningError);
      assert.match((err as Error).message, /Cannot use key id/);
    }
  }
});
parse.run();

const describe = suite("describeKeyVaultError()");
describe("names the role to grant on 403, the config key on 404, az login on 401", () => {
  assert.match(describeKeyVaultError({ statusCode: 403, code: "Forbidden" }), /Crypto User or Crypto Officer/);
  assert.match(describeKeyVaultError({ statusCode: 404, code: "KeyNotFound" }), /KeyNotFound.*publisher\.idp\.keyId/);
  assert.match(describeKeyVaultError({ statusCode: 401 }), /az login/);
});
describe("keeps only the first line of other errors", () => {
  assert.is(describeKeyVaultError(new Error("boom\nstack line")), "boom");
  assert.is(describeKeyVaultError({ statusCode: 500, code: "InternalError", message: "oops\nmore" }), "HTTP 500 InternalError: oops");
});
describe.run();

const get = suite("getKeyVaultPublicKey()");
get("refuses a malformed key id before asking for any token", async () => {
  let tokenRequests = 0;
  const credential = { getToken: async () => { tokenRequests++; return { token: "x", expiresOnTimestamp: Date.now() + 60_000 }; } };
  try {
    await getKeyVaultPublicKey({ keyId: "https://v.vault.azure.net/secrets/nope", credential, settings: readSettings({}) });
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.instance(err, SigningError);
  }
  assert.is(tokenRequests, 0);
});
get.run();
