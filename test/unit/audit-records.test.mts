import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SignJWT, generateKeyPair } from "jose";
import { createAuditWriter } from "../../lib/audit/log.mts";
import { exchangeRecord, redactForAudit, type Exchange } from "../../lib/audit/records.mts";
import { auditPolicy } from "../../lib/audit/policy.mts";
import { createRestClient } from "../../lib/azure/rest.mts";
import { readSettings } from "../../lib/core/settings.mts";
import { tempDir } from "./_support.mts";
import { scanRecords } from "./_support.mts";

const { privateKey } = await generateKeyPair("RS256");
const jwt = await new SignJWT({ oid: "o-1", aud: "https://vault.azure.net" }).setProtectedHeader({ alg: "RS256" }).sign(privateKey);

const T = suite("redactForAudit() / exchangeRecord()");
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
    const writer = await createAuditWriter({ path });
    await writer.append(exchangeRecord({
      operation: "keyvault.setSecret",
      request: { method: "PUT", url: "https://v/secrets/x", headers: { Authorization: `Bearer ${jwt}`, "content-type": "application/json" }, body: { value: "hunter2" } },
      response: { status: 200, body: { value: "hunter2", id: "https://v/secrets/x/1" } },
    }));
    await writer.close();
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

const P = suite("auditPolicy() in a REST client");
P("records each call once, after its retries, with its operation, the answer redacted and no Authorization", async () => {
  let calls = 0;
  const server = createServer((_req, res) => {
    calls++;
    if (calls === 1) {
      res.writeHead(503, { "retry-after": "0" }).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "x-ms-request-id": "rid-1" }).end(JSON.stringify({ value: "s3cret", id: "https://v/secrets/a/1" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const recorded: Exchange[] = [];
  try {
    const client = await createRestClient({
      credential: { getToken: async () => ({ token: "opaque-token-value", expiresOnTimestamp: Date.now() + 3_600_000 }) },
      scope: "https://vault.azure.net/.default",
      settings: readSettings({}),
      policies: [{ policy: auditPolicy(async (e) => void recorded.push(e)), position: "perCall" }],
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/secrets/a`;
    // The bearer policy refuses plain http; the audit policy sits outside it, so a failure is recorded too.
    await client.send({ method: "GET", url, audit: { operation: "keyvault.getSecret" } }).catch(() => {});
    assert.is(recorded.length, 1);
    assert.is(recorded[0].operation, "keyvault.getSecret");
    assert.ok(recorded[0].error, "a call that failed is recorded with its error");
    assert.is(calls, 0, "nothing reached the server over plain http");
  } finally {
    server.close();
  }
});
P("the record of a successful call: status, request id, body redacted by exchangeRecord", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    const writer = await createAuditWriter({ path });
    const policy = auditPolicy(async (e) => writer.append(exchangeRecord({ ...e, customer: { subscriptionId: "s", managedResourceGroup: "m" } })));
    const { createHttpHeaders, createPipelineRequest } = await import("@azure/core-rest-pipeline");
    const request = createPipelineRequest({ url: "https://v.vault.azure.net/secrets/a", method: "PUT", body: JSON.stringify({ value: "s3cret" }), headers: createHttpHeaders({ authorization: "Bearer x" }) });
    await policy.sendRequest(request, async (req) => ({
      request: req, status: 200, headers: createHttpHeaders({ "x-ms-request-id": "rid-2" }), bodyAsText: JSON.stringify({ value: "s3cret", id: "i" }),
    }));
    await writer.close();
    const text = await readFile(path, "utf8");
    assert.not.match(text, /s3cret/);
    assert.not.match(text, /Bearer/);
    const [rec] = (await scanRecords(path)).records as any[];
    assert.is(rec.operation, "PUT v.vault.azure.net");
    assert.is(rec.response.status, 200);
    assert.is(rec.response.requestId, "rid-2");
    assert.is(rec.request.body.value, "<redacted: 6 chars>");
    assert.is(rec.customer.managedResourceGroup, "m");
  } finally {
    await cleanup();
  }
});
P.run();
