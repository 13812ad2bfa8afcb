import { suite } from "uvu";
import * as assert from "uvu/assert";
import { appendFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  buildAuditRecord, createAuditWriter, findSecrets, redactHeaders,
  serializeAuditRecord,
} from "../../lib/audit/log.mts";
import { AuditLeakError } from "../../lib/core/errors.mts";
import { buildClientAssertion } from "../../lib/identity/assertion.mts";
import { makeTestKey, scanRecords, tempDir } from "./_support.mts";
import type { AuditEntry } from "../../lib/audit/records.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";

const request = {
  method: "POST",
  url: "https://marketplaceapi.microsoft.com/api/usageEvent?api-version=2018-08-31",
  headers: { "Content-Type": "application/json", Authorization: "Bearer abc", "x-ms-requestid": "r1" },
  body: { dimension: "dim1", quantity: 5 },
};

const build = suite("buildAuditRecord()");
build("stamps the time and drops Authorization from request headers", () => {
  const record = buildAuditRecord({ operation: "usageEvent", request, now: Date.parse("2024-05-01T13:00:00Z") });
  assert.is(record.time, "2024-05-01T13:00:00.000Z");
  assert.equal(record.request!.headers, { "content-type": "application/json", "x-ms-requestid": "r1" });
  assert.is(request.headers.Authorization, "Bearer abc", "input not mutated");
});
build.run();

const redact = suite("redactHeaders()");
redact("removes authorization and cookies in any case", () => {
  assert.equal(redactHeaders({ AUTHORIZATION: "x", Cookie: "c", "Set-Cookie": "s", "X-A": "1", undef: undefined }), { "x-a": "1" });
});
redact.run();

const secrets = suite("findSecrets() / serializeAuditRecord()");
secrets("finds a JWT anywhere, a Bearer string and secret-named keys", async () => {
  const key = await makeTestKey();
  const jwt = await buildClientAssertion({ issuer: "https://i.example/x", subject: "s", signer: key.signer });
  assert.equal(findSecrets({ a: [{ b: `prefix ${jwt}` }] }), ["$.a[0].b"]);
  assert.equal(findSecrets({ h: "Bearer xyz" }), ["$.h"]);
  assert.equal(findSecrets({ client_assertion: "x", Access_Token: "y", fine: "z", token: "" }), ["$.client_assertion", "$.Access_Token"]);
  assert.equal(findSecrets({ tokenClaims: { oid: "o", aud: "a" } }), []);
});
secrets("refuses to serialise a record holding a token", async () => {
  const key = await makeTestKey();
  const jwt = await buildClientAssertion({ issuer: "https://i.example/x", subject: "s", signer: key.signer });
  try {
    serializeAuditRecord({ time: "t", operation: "keyvault.getSecret", response: { status: 200, body: { echoed: jwt } } });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, AuditLeakError);
    assert.is((error as AuditLeakError).code, "ERR_AUDIT_LEAK");
    assert.match((error as Error).message, /\$\.response\.body\.echoed/);
    assert.not.match((error as Error).message, /eyJ/);
  }
});
secrets("in a usage record, checks the fields that can hold a token: URL, headers, error, token claims, response ids", async () => {
  const key = await makeTestKey();
  const jwt = await buildClientAssertion({ issuer: "https://i.example/x", subject: "s", signer: key.signer });
  const usage = (extra: Record<string, unknown>) => ({ time: "t", operation: "batchUsageEvent", id: "i", ...extra }) as AuditRecord;
  const request = (headers: Record<string, string>, url = "u") => ({ method: "POST", url, headers, body: { request: [] } });
  for (const [record, path] of [
    [usage({ request: request({ "x-echo": `Bearer ${jwt}` }) }), "$.request.headers.x-echo"],
    [usage({ request: request({}, `https://h/?access_token=${jwt}`) }), "$.request.url"],
    [usage({ error: { message: `refused ${jwt}` } }), "$.error.message"],
    [usage({ tokenClaims: { access_token: "x" } }), "$.tokenClaims.access_token"],
    [usage({ response: { status: 200, requestId: jwt, body: null } }), "$.response.requestId"],
  ] as const) {
    try {
      serializeAuditRecord(record);
      assert.unreachable(`accepted a token at ${path}`);
    } catch (error) {
      assert.instance(error, AuditLeakError);
      assert.ok((error as Error).message.includes(path), (error as Error).message);
    }
  }
  // The events and the API's echo of them come from config and the input: not walked.
  const events = Array.from({ length: 25 }, (_, i) => ({ dimension: `d${i}`, note: "token" }));
  assert.ok(serializeAuditRecord(usage({ request: request({ "x-ms-requestid": "r" }), response: { status: 200, body: { result: events } } })).includes('"d24"'));
});
secrets("serialises to a single line", () => {
  const line = serializeAuditRecord({ time: "t", operation: "o", request: { method: "POST", url: "u", headers: {}, body: { text: "a\nb" } } });
  assert.not.match(line, /\n/);
});
secrets.run();

const append = suite("createAuditWriter(): what one append leaves on disk");
/** One record through the one writer, as a short-lived command writes it. */
async function appendOne(path: string, record: Record<string, unknown>): Promise<void> {
  const w = await createAuditWriter({ path });
  try {
    await w.append(record as unknown as AuditEntry);
  } finally {
    await w.close();
  }
}
append("creates the file 0600 and appends one line per record", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "nested", "audit.jsonl");
    await appendOne(path, { operation: "a" });
    await appendOne(path, { operation: "b" });
    assert.is((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await readFile(path, "utf8")).trim().split("\n").map((l) => JSON.parse(l).operation), ["a", "b"]);
  } finally {
    await cleanup();
  }
});
append("never rewrites existing content", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await writeFile(path, '{"time":"t0","operation":"old"}\n');
    const before = await stat(path);
    await appendOne(path, { operation: "new" });
    assert.is((await stat(path)).ino, before.ino);
    assert.ok((await readFile(path, "utf8")).startsWith('{"time":"t0","operation":"old"}\n'));
  } finally {
    await cleanup();
  }
});
append("writes nothing when the record holds a token", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    try {
      await appendOne(path, { operation: "o", request: { method: "POST", url: "u", headers: {}, body: { access_token: "Bearer x" } } });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AuditLeakError);
    }
    assert.equal(await scanRecords(path), { records: [], invalidLines: 0 });
  } finally {
    await cleanup();
  }
});
append.run();

const scan = suite("scanAuditLog(): the one reader");
scan("skips blank lines, counts lines that are not JSON objects, and reads appends by others", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await appendOne(path, buildAuditRecord({ operation: "x", request }) as unknown as Record<string, unknown>);
    await appendFile(path, '\n[1]\n{"time":"t","operation":"y"}\n');
    const log = await scanRecords(path);
    assert.equal(log.records.map((r) => r.operation), ["x", "y"]);
    assert.is(log.invalidLines, 1);
  } finally {
    await cleanup();
  }
});
scan("a missing file is an empty log", async () => {
  assert.equal(await scanRecords("/nonexistent/dir/audit.jsonl"), { records: [], invalidLines: 0 });
});
scan.run();

