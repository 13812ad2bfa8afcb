import { suite } from "uvu";
import * as assert from "uvu/assert";
import { appendFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  appendAuditRecord, buildAuditRecord, findSecrets, parseAuditLog, readAuditLog, redactHeaders,
  serializeAuditRecord,
} from "../../lib/audit/log.mts";
import { AuditLeakError } from "../../lib/core/errors.mts";
import { buildClientAssertion } from "../../lib/identity/assertion.mts";
import { makeTestKey, tempDir } from "./_support.mts";

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
    serializeAuditRecord({ time: "t", operation: "usageEvent", response: { status: 200, body: { echoed: jwt } } });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, AuditLeakError);
    assert.is((error as AuditLeakError).code, "ERR_AUDIT_LEAK");
    assert.match((error as Error).message, /\$\.response\.body\.echoed/);
    assert.not.match((error as Error).message, /eyJ/);
  }
});
secrets("serialises to a single line", () => {
  const line = serializeAuditRecord({ time: "t", operation: "o", request: { method: "POST", url: "u", headers: {}, body: { text: "a\nb" } } });
  assert.not.match(line, /\n/);
});
secrets.run();

const append = suite("appendAuditRecord()");
append("creates the file 0600 and appends one line per record", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "nested", "audit.jsonl");
    await appendAuditRecord({ path, record: { time: "t1", operation: "a" } });
    await appendAuditRecord({ path, record: { time: "t2", operation: "b" } });
    assert.is((await stat(path)).mode & 0o777, 0o600);
    assert.is(await readFile(path, "utf8"), '{"time":"t1","operation":"a"}\n{"time":"t2","operation":"b"}\n');
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
    await appendAuditRecord({ path, record: { time: "t1", operation: "new" } });
    assert.is((await stat(path)).ino, before.ino);
    assert.ok((await readFile(path, "utf8")).startsWith('{"time":"t0","operation":"old"}\n'));
  } finally {
    await cleanup();
  }
});
append("starts a fresh line after a torn write", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await writeFile(path, '{"time":"t0","operation":"a"}\n{"time":"t1","oper');
    await appendAuditRecord({ path, record: { time: "t2", operation: "c" } });
    const log = await readAuditLog({ path });
    assert.equal(log.records.map((r) => r.operation), ["a", "c"]);
    assert.equal(log.invalidLines, [{ line: 2, text: '{"time":"t1","oper' }]);
  } finally {
    await cleanup();
  }
});
append("writes nothing when the record holds a token", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    try {
      await appendAuditRecord({ path, record: { time: "t", operation: "o", request: { method: "POST", url: "u", headers: { authorization: "Bearer x" }, body: null } } });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AuditLeakError);
    }
    assert.equal(await readAuditLog({ path }), { records: [], invalidLines: [] });
  } finally {
    await cleanup();
  }
});
append("concurrent appends keep every record intact", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await Promise.all(Array.from({ length: 50 }, (_, i) => appendAuditRecord({ path, record: { time: "t", operation: `op${i}`, pad: "x".repeat(2000) } })));
    const log = await readAuditLog({ path });
    assert.is(log.records.length, 50);
    assert.equal(log.invalidLines, []);
  } finally {
    await cleanup();
  }
});
append.run();

const parse = suite("parseAuditLog() / readAuditLog()");
parse("tolerates a torn last line and reports it", () => {
  const log = parseAuditLog('{"time":"t","operation":"a"}\n{"time":"t","op');
  assert.is(log.records.length, 1);
  assert.is(log.tornTail, '{"time":"t","op');
  assert.equal(log.invalidLines, []);
});
parse("skips blank lines and reports non-object lines with their number", () => {
  const log = parseAuditLog('\n{"time":"t","operation":"a"}\n[1]\n\n');
  assert.is(log.records.length, 1);
  assert.equal(log.invalidLines, [{ line: 3, text: "[1]" }]);
  assert.is(log.tornTail, undefined);
});
parse("a missing file is an empty log", async () => {
  assert.equal(await readAuditLog({ path: "/nonexistent/dir/audit.jsonl" }), { records: [], invalidLines: [] });
});
parse("reads what appendAuditRecord wrote, even with extra appends by others", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, "audit.jsonl");
    await appendAuditRecord({ path, record: buildAuditRecord({ operation: "x", request }) });
    await appendFile(path, '{"time":"t","operation":"y"}\n');
    const log = await readAuditLog({ path });
    assert.equal(log.records.map((r) => r.operation), ["x", "y"]);
  } finally {
    await cleanup();
  }
});
parse.run();

