// Faults on blob storage itself, under the blob ledger store (lib/audit/blob-store.mts): the
// sandbox's front plays *.blob.core.windows.net in front of Azurite and injects them (a real TCP
// reset, an answer lost after Azurite did the work, 5xx), through @azure/storage-blob with the
// ISV's bearer token and HTTPS_PROXY, as a client in Azure would meet them.
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BlobServiceClient } from "@azure/storage-blob";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import type { AuditEntry } from "../../lib/audit/records.mts";
import { AuditWriteError, RunLockedError } from "../../lib/core/errors.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox();
const credential = isvCredential(sb);
// Made before HTTPS_PROXY is set (a client reads it when it is made): reads Azurite directly.
const service = new BlobServiceClient(`${sb.endpoints.blob}/`, credential);
const entry = (o: Record<string, unknown>) => ({ operation: "test", ...o }) as unknown as AuditEntry;
async function blobsUnder(prefix: string) {
  const out: Array<{ name: string }> = [];
  for await (const b of service.getContainerClient("ledger").listBlobsFlat({ prefix })) out.push({ name: b.name });
  return out;
}

process.env.HTTPS_PROXY = sb.front!.url;
process.env.NO_PROXY = "127.0.0.1,localhost";
const viaFront = (o: { prefix?: string; leaseSeconds?: number } = {}) =>
  blobLedgerStore({ blobEndpoint: "https://devstoreaccount1.blob.core.windows.net/", container: "ledger", prefix: o.prefix ?? `${randomUUID()}/`, credential, ...o });
const fault = (spec: Record<string, unknown>) => fetch(`${sb.endpoints.admin}/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ service: "storage", ...spec }) });
const noFaults = () => fetch(`${sb.endpoints.admin}/faults`, { method: "DELETE" });
async function bytesOf(prefix: string): Promise<string> {
  let text = "";
  for (const b of await blobsUnder(prefix)) text += (await service.getContainerClient("ledger").getBlobClient(b.name).downloadToBuffer()).toString("utf8");
  return text;
}

const F = suite("blob ledger: faults on storage");
F("an Append Block whose answer is lost (Azurite appended, the client never heard): the append succeeds, the record is there once", async () => {
  const prefix = `${randomUUID()}/`;
  const w = await viaFront({ prefix }).createWriter();
  await w.append(entry({ id: "before" }));
  await fault({ method: "PUT", route: "appendblock", kind: "drop", times: 1 });
  await w.append(entry({ id: "lost-answer" }));
  await w.append(entry({ id: "after" }));
  await w.close();
  const text = await bytesOf(prefix);
  assert.equal(text.trim().split("\n").map((l) => JSON.parse(l).id), ["before", "lost-answer", "after"]);
  await noFaults();
});
F("503 and a TCP reset on Append Block are retried: each record once", async () => {
  const prefix = `${randomUUID()}/`;
  const w = await viaFront({ prefix }).createWriter();
  await w.append(entry({ id: "first" }));
  await fault({ method: "PUT", route: "appendblock", kind: "status", status: 503, times: 1 });
  await w.append(entry({ id: "after-503" }));
  await fault({ method: "PUT", route: "appendblock", kind: "reset", times: 1 });
  await w.append(entry({ id: "after-reset" }));
  await w.close();
  assert.equal((await bytesOf(prefix)).trim().split("\n").map((l) => JSON.parse(l).id), ["first", "after-503", "after-reset"]);
  await noFaults();
});
F("Append Block failing every time: the append fails (AuditWriteError) and so does every later one; nothing is counted written", async () => {
  const prefix = `${randomUUID()}/`;
  const w = await viaFront({ prefix }).createWriter();
  await w.append(entry({ id: "ok" }));
  await fault({ method: "PUT", route: "appendblock", kind: "status", status: 500, rate: 1 });
  try {
    await w.append(entry({ id: "refused" }));
    assert.unreachable("append succeeded");
  } catch (error) {
    assert.instance(error, AuditWriteError);
    assert.match((error as Error).message, /Cannot write to .*: Append Block to .*HTTP 500/);
  }
  await noFaults();
  await w.append(entry({ id: "later" })).then(() => assert.unreachable("a later append after a failure"), (e) => assert.instance(e, AuditWriteError));
  await w.close();
  assert.equal((await bytesOf(prefix)).trim().split("\n").map((l) => JSON.parse(l).id), ["ok"]);
  assert.is(w.stats().records, 1);
});
F("lease renewals failing (503, then resets): the holder counts its lease lost within the lease's time and says why", async () => {
  const lock = await viaFront({ leaseSeconds: 15 }).acquireLock({});
  assert.is(lock.lost(), undefined);
  await fault({ method: "PUT", route: "lease", kind: "status", status: 503, rate: 1 });
  const deadline = Date.now() + 30_000;
  while (!lock.lost() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.instance(lock.lost(), RunLockedError);
  assert.match(lock.lost()!.message, /Lost the lease on .*emit\.lock: not renewed for \d+ s/);
  await noFaults();
  await lock.release();
});

F.after(async () => {
  await noFaults();
  await sb.stop();
});
F.run();
