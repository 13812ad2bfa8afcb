import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { SignJWT, generateKeyPair } from "jose";
import { auditExchange, redactForAudit } from "../../lib/audit/exchange.mts";
import { tempDir } from "./_support.mts";

const { privateKey } = await generateKeyPair("RS256");
const jwt = await new SignJWT({ oid: "o-1", aud: "https://vault.azure.net" }).setProtectedHeader({ alg: "RS256" }).sign(privateKey);

const T = suite("redactForAudit() / auditExchange()");
T("secret values become their length; tokens their length and claims; the rest stays", () => {
  const r = redactForAudit({ value: "hunter2", id: "https://v/secrets/x", list: { value: [{ access_token: jwt, expires_on: "1" }] } }) as any;
  assert.is(r.value, "<redacted: 7 chars>");
  assert.is(r.id, "https://v/secrets/x");
  assert.is(r.list.value[0].access_token, undefined);
  assert.match(r.list.value[0].access_tokenRedacted, /^<redacted: \d+ chars>$/);
  assert.is(r.list.value[0].access_tokenClaims.oid, "o-1");
  assert.is(r.list.value[0].expires_on, "1");
});
T("an exchange with a secret and a token lands in audit.jsonl without either", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await auditExchange({
      path,
      record: {
        operation: "keyvault.setSecret",
        request: { method: "PUT", url: "https://v/secrets/x", headers: { Authorization: `Bearer ${jwt}`, "content-type": "application/json" }, body: { value: "hunter2" } },
        response: { status: 200, body: { value: "hunter2", id: "https://v/secrets/x/1" } },
      },
    });
    const text = await readFile(path, "utf8");
    assert.not.match(text, /hunter2/);
    assert.not.match(text, /eyJ/);
    const rec = JSON.parse(text);
    assert.is(rec.request.headers["content-type"], "application/json");
    assert.is(rec.response.body.id, "https://v/secrets/x/1");
  } finally {
    await cleanup();
  }
});
T.run();
