import { suite } from "uvu";
import * as assert from "uvu/assert";
import { base64url, compactVerify, decodeProtectedHeader } from "jose";
import { signJwt, type Signer } from "../../lib/identity/signer.mts";
import { parseKeyId } from "../../lib/identity/signing-key.mts";
import { SigningError } from "../../lib/core/errors.mts";
import { makeTestKey } from "./_support.mts";

const sign = suite("signJwt()");
sign("produces b64url(header).b64url(payload).b64url(signature) that jose verifies", async () => {
  const key = await makeTestKey("k1");
  const jwt = await signJwt({ payload: { a: 1, s: "ü" }, signer: key.signer });
  const [h, p, s] = jwt.split(".");
  assert.equal(JSON.parse(new TextDecoder().decode(base64url.decode(h))), { typ: "JWT", alg: "RS256", kid: "k1" });
  assert.equal(JSON.parse(new TextDecoder().decode(base64url.decode(p))), { a: 1, s: "ü" });
  assert.not.match(jwt, /[+/=]/);
  assert.is(base64url.decode(s).length, 256);
  await compactVerify(jwt, key.publicKey);
});
sign("always uses RS256 and the signer's kid, whatever the header says", async () => {
  const key = await makeTestKey("real");
  const jwt = await signJwt({ header: { alg: "none", kid: "fake", x5t: "t" }, payload: {}, signer: key.signer });
  assert.equal(decodeProtectedHeader(jwt), { typ: "JWT", x5t: "t", alg: "RS256", kid: "real" });
});
sign("signs exactly the ASCII bytes of header.payload", async () => {
  let seen: Uint8Array | undefined;
  const signer: Signer = { kid: "k", sign: async (data) => ((seen = data), new Uint8Array([1, 2, 3])) };
  const jwt = await signJwt({ payload: { x: 1 }, signer });
  assert.is(new TextDecoder().decode(seen), jwt.split(".").slice(0, 2).join("."));
  assert.is(jwt.split(".")[2], "AQID");
});
sign("refuses an empty signature", async () => {
  const signer: Signer = { kid: "k", sign: async () => new Uint8Array() };
  try {
    await signJwt({ payload: {}, signer });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, SigningError);
    assert.is((error as SigningError).code, "ERR_SIGNING");
  }
});
sign.run();

const keyId = suite("parseKeyId()");
keyId("splits versioned and unversioned key ids", () => {
  assert.equal(parseKeyId("https://v.vault.azure.net/keys/idpkey/0123abcd"), { vaultUrl: "https://v.vault.azure.net", name: "idpkey", version: "0123abcd" });
  assert.equal(parseKeyId("https://127.0.0.1:8443/keys/idpkey"), { vaultUrl: "https://127.0.0.1:8443", name: "idpkey" });
});
keyId("rejects other URLs", () => {
  for (const id of ["nope", "https://v.vault.azure.net/secrets/x", "https://v.vault.azure.net/keys"]) {
    try {
      parseKeyId(id);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, SigningError);
    }
  }
});
keyId.run();
