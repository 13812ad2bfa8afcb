// The ledger in Azure Storage, for runners that share it (several machines, the replicas of a
// Container Apps job). No library offers an append-only, multi-writer log on blobs, so this file
// builds one from the service's own primitives, used through @azure/storage-blob:
//
// - Records go into append blobs, `<prefix>log/<UTC day>/<writer>-<n>.jsonl`. Each writer (one
//   per process and purpose) appends only to blobs of its own, so no two writers ever append to
//   one blob (the service serialises concurrent appends, but Azurite does not promise to, and a
//   retried append could not tell its own block from another writer's). A writer starts a new
//   blob at each UTC day and well before the 50,000-block limit.
// - Every Append Block carries `x-ms-blob-condition-appendpos` (the length the writer knows).
//   A retry after a lost answer whose first try landed gets 412 AppendPositionConditionNotMet;
//   the writer then reads the blob's length and the bytes at that position: if they are its own
//   block, the append counts as done, else the writer fails (nothing is written twice, nothing
//   counted that is not there). Each block holds whole lines, so a record is all there or not.
// - A scan lists the day folders that can hold records at or after `sinceMs` (less the same
//   slack as the file log), reads each blob (only the bytes past the cursor on a rescan) and
//   passes the records on in time order (stable within a blob).
// - The run lock is a lease on `<prefix>locks/<name>.lock` (60 s, renewed every 15 s, released at
//   the end). A waiting run polls; an expired lease is free to take. A lease whose holder's
//   metadata names a process of this host that is gone is taken over at once with Change Lease
//   (which succeeds only while that very lease is the current one), as the lock file does.
//   A holder that cannot renew for 45 s counts the lease as lost and sends nothing more.
import { Buffer } from "node:buffer";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { TokenCredential } from "@azure/core-auth";
import { AuditWriteError, DataPlaneError, RunLockedError, StateWriteError } from "../core/errors.mts";
import { type AcquireRunLockOptions, processExists, type LockInfo, type RunLock } from "../core/lock.mts";
import { AUDIT_ORDER_SLACK_MS, type AuditRecord, type AuditWriter, createRecordWriter, parseRecordLine, type RecordSink } from "./log.mts";
import { appendOne, type FileMark, type ImportResult, type LedgerStore, type ScanCursor } from "./store.mts";
import { usageFileRecord } from "./records.mts";

/** Append Block's largest body before api-version 2022-11-02 (Azurite's); our blocks stay under it. */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024;
/** An append blob takes at most 50,000 blocks; a writer moves to its next blob well before. */
export const ROLL_AT_BLOCKS = 45_000;
/** A lease's duration: the longest finite one the service grants. */
export const LEASE_SECONDS = 60;
const DAY_MS = 86_400_000;

type BlobModule = typeof import("@azure/storage-blob");
type ContainerClient = import("@azure/storage-blob").ContainerClient;

export interface BlobLedgerOptions {
  blobEndpoint: string;
  container: string;
  prefix: string;
  credential: TokenCredential;
  tryTimeoutMs?: number;
  /** Lease duration in seconds (15-60); renewed every quarter of it. Default 60. */
  leaseSeconds?: number;
  /** Clock for the writer's day folders and blob names (tests). */
  now?: () => number;
}

const _day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The storage error code of a RestError from @azure/storage-blob (x-ms-error-code). */
export function storageErrorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; details?: { errorCode?: unknown }; response?: { headers?: { get?(name: string): string | undefined } } };
  const fromDetails = typeof e?.details?.errorCode === "string" ? e.details.errorCode : undefined;
  const fromHeader = e?.response?.headers?.get?.("x-ms-error-code");
  return fromDetails ?? fromHeader ?? (typeof e?.code === "string" ? e.code : undefined);
}

function _status(error: unknown): number | undefined {
  const s = (error as { statusCode?: unknown })?.statusCode;
  return typeof s === "number" ? s : undefined;
}

function _describe(error: unknown): string {
  const status = _status(error);
  const code = storageErrorCode(error);
  const message = String((error as Error)?.message ?? error).split("\n")[0];
  return status ? `HTTP ${status}${code ? ` ${code}` : ""}: ${message}` : message;
}

/** A writer's name: when it started, on which host and process, and a random part. */
function _writerName(now: number): string {
  const host = hostname().replace(/[^A-Za-z0-9-]/g, "-").slice(0, 40) || "host";
  return `${new Date(now).toISOString().replace(/[-:.]/g, "")}-${host}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** The Storage SDK's clients for one container, made once per store. */
async function _containerOf(o: BlobLedgerOptions): Promise<{ sdk: BlobModule; container: ContainerClient }> {
  const sdk = await import("@azure/storage-blob");
  const service = new sdk.BlobServiceClient(o.blobEndpoint, o.credential, {
    retryOptions: { maxTries: 4, ...(o.tryTimeoutMs ? { tryTimeoutInMs: o.tryTimeoutMs } : {}) },
  });
  return { sdk, container: service.getContainerClient(o.container) };
}

/** Append blobs of one writer as a sink of whole lines (see the file's opening comment). */
function _blobSink(o: { container: ContainerClient; prefix: string; where: string; now: () => number; ensureContainer: () => Promise<void> }): RecordSink {
  const writer = _writerName(o.now());
  let blob: import("@azure/storage-blob").AppendBlobClient | undefined;
  let day = "";
  let length = 0;
  let blocks = 0;
  let seq = 0;
  const encoder = new TextEncoder();
  const fail = (what: string, error: unknown): never => {
    throw new AuditWriteError(`Cannot write to ${o.where}: ${what}: ${_describe(error)}`, { path: o.where, cause: error });
  };
  const open = async (today: string) => {
    await o.ensureContainer();
    seq++;
    const name = `${o.prefix}log/${today}/${writer}-${seq}.jsonl`;
    const next = o.container.getAppendBlobClient(name);
    try {
      await next.create({ conditions: { ifNoneMatch: "*" }, blobHTTPHeaders: { blobContentType: "application/x-ndjson" } });
    } catch (error) {
      // Our own create whose answer was lost: the name is this writer's alone.
      if (storageErrorCode(error) !== "BlobAlreadyExists") fail(`cannot create ${name}`, error);
      const props = await next.getProperties().catch((e) => fail(`cannot read ${name}`, e));
      if ((props.contentLength ?? 0) !== 0) fail(`${name} exists already and is not empty`, error);
    }
    blob = next;
    day = today;
    length = 0;
    blocks = 0;
  };
  const appendBlock = async (bytes: Uint8Array) => {
    const at = length;
    try {
      const r = await blob!.appendBlock(bytes, bytes.length, { conditions: { appendPosition: at } });
      blocks = r.blobCommittedBlockCount ?? blocks + 1;
    } catch (error) {
      if (storageErrorCode(error) !== "AppendPositionConditionNotMet") fail(`Append Block to ${blob!.name}`, error);
      // A retry whose first try landed: our block must be exactly at `at`.
      const props = await blob!.getProperties().catch((e) => fail(`cannot read ${blob!.name}`, e));
      const there = props.contentLength === at + bytes.length
        ? await blob!.downloadToBuffer(at, bytes.length).catch((e) => fail(`cannot read ${blob!.name}`, e))
        : undefined;
      if (!there || Buffer.compare(there, Buffer.from(bytes)) !== 0) {
        fail(`Append Block to ${blob!.name} at ${at}`, new Error(`the blob is ${props.contentLength} bytes and does not end with this block; another writer appended to it`));
      }
      blocks = (props.blobCommittedBlockCount ?? blocks) || blocks + 1;
    }
    length = at + bytes.length;
  };
  return {
    where: o.where,
    async write(lines) {
      const t0 = performance.now();
      const today = _day(o.now());
      if (!blob || today !== day || blocks >= ROLL_AT_BLOCKS) await open(today);
      let chunk: string[] = [];
      let size = 0;
      let bytes = 0;
      const put = async () => {
        if (chunk.length === 0) return;
        const body = encoder.encode(chunk.join(""));
        await appendBlock(body);
        bytes += body.length;
        chunk = [];
        size = 0;
      };
      for (const line of lines) {
        const text = `${line}\n`;
        const n = encoder.encode(text).length;
        if (n > MAX_BLOCK_BYTES) fail("a record", new Error(`it is ${n} bytes, more than a block takes (${MAX_BLOCK_BYTES})`));
        if (size + n > MAX_BLOCK_BYTES) await put();
        chunk.push(text);
        size += n;
      }
      await put();
      return { syncMs: performance.now() - t0, bytes };
    },
    close: async () => {},
  };
}

/** The ledger store over a blob container (see the file's opening comment). */
export function blobLedgerStore(o: BlobLedgerOptions): LedgerStore {
  const where = `${o.blobEndpoint}${o.container}/${o.prefix}`;
  const now = o.now ?? Date.now;
  let clients: Promise<{ sdk: BlobModule; container: ContainerClient }> | undefined;
  const getClients = () => (clients ??= _containerOf(o));
  let created: Promise<void> | undefined;
  const ensureContainer = () => (created ??= getClients().then(async ({ container }) => {
    try {
      await container.createIfNotExists();
    } catch (error) {
      created = undefined;
      // Without the right to create containers (Storage Blob Data Contributor has it), an
      // existing container still works: the appends say so if not.
      if (_status(error) !== 403) throw new AuditWriteError(`Cannot create the ledger container ${o.blobEndpoint}${o.container}: ${_describe(error)}`, { path: where, cause: error });
    }
  }));
  return {
    kind: "blob",
    where,
    async createWriter(): Promise<AuditWriter> {
      const { container } = await getClients();
      return createRecordWriter(_blobSink({ container, prefix: o.prefix, where, now, ensureContainer }));
    },
    async scan({ onRecord, sinceMs, after }) {
      const { container } = await getClients();
      const read: Record<string, number> = { ...(after?.kind === "blob" ? after.read : {}) };
      const prefixes: string[] = [];
      if (sinceMs === undefined) prefixes.push(`${o.prefix}log/`);
      else {
        // A day folder is named by its writer's clock; a day on either side covers clock skew.
        for (let d = Date.parse(_day(sinceMs - AUDIT_ORDER_SLACK_MS)) - DAY_MS; d <= now() + DAY_MS; d += DAY_MS) prefixes.push(`${o.prefix}log/${_day(d)}/`);
      }
      const blobs: Array<{ name: string; length: number }> = [];
      try {
        for (const p of prefixes) {
          for await (const b of container.listBlobsFlat({ prefix: p })) {
            if (b.name.endsWith(".jsonl")) blobs.push({ name: b.name, length: b.properties.contentLength ?? 0 });
          }
        }
      } catch (error) {
        if (storageErrorCode(error) === "ContainerNotFound") return { records: 0, invalidLines: 0, cursor: { kind: "blob", read } };
        throw new DataPlaneError(`Cannot list the ledger ${where}: ${_describe(error)}`, { service: "storage", cause: error, ...(_status(error) ? { httpStatus: _status(error) } : {}) });
      }
      blobs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const found: Array<{ t: number; b: number; i: number; record: AuditRecord }> = [];
      let invalidLines = 0;
      const decoder = new TextDecoder();
      const todo = blobs.map((b, index) => ({ ...b, index })).filter((b) => b.length > (read[b.name] ?? 0));
      const readOne = async (b: (typeof todo)[number]) => {
        const from = read[b.name] ?? 0;
        let buffer: Buffer;
        try {
          buffer = await container.getBlobClient(b.name).downloadToBuffer(from, b.length - from);
        } catch (error) {
          throw new DataPlaneError(`Cannot read the ledger blob ${b.name} of ${where}: ${_describe(error)}`, { service: "storage", cause: error, ...(_status(error) ? { httpStatus: _status(error) } : {}) });
        }
        const text = decoder.decode(buffer);
        const end = text.lastIndexOf("\n") + 1;
        // Blocks hold whole lines: a tail without a newline is read again next time.
        read[b.name] = from + Buffer.byteLength(text.slice(0, end));
        text.slice(0, end).split("\n").forEach((raw, i) => {
          const record = parseRecordLine(raw);
          if (record === undefined) return;
          if (record === "invalid") {
            invalidLines++;
            return;
          }
          const t = Date.parse(String(record.time));
          found.push({ t: Number.isNaN(t) ? Infinity : t, b: b.index, i, record });
        });
      };
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(16, todo.length) }, async () => {
        while (next < todo.length) await readOne(todo[next++]);
      }));
      // Time order across writers; a writer's own records keep their order on equal times.
      found.sort((x, y) => (x.t === y.t ? 0 : x.t < y.t ? -1 : 1) || x.b - y.b || x.i - y.i);
      for (const f of found) onRecord(f.record);
      return { records: found.length, invalidLines, cursor: { kind: "blob", read } satisfies ScanCursor };
    },
    async acquireLock(options) {
      const { container } = await getClients();
      await ensureContainer();
      return _acquireLease({ ...options, container, prefix: o.prefix, leaseSeconds: o.leaseSeconds ?? LEASE_SECONDS, where: o.blobEndpoint + o.container });
    },
    sharedConfig: {
      async get() {
        const { container } = await getClients();
        try {
          return new TextDecoder().decode(await container.getBlobClient(`${o.prefix}config.json`).downloadToBuffer());
        } catch (error) {
          if (storageErrorCode(error) === "BlobNotFound" || storageErrorCode(error) === "ContainerNotFound") return undefined;
          throw new DataPlaneError(`Cannot read ${where}config.json: ${_describe(error)}`, { service: "storage", cause: error });
        }
      },
      async put(text) {
        const { container } = await getClients();
        await ensureContainer();
        try {
          await container.getBlockBlobClient(`${o.prefix}config.json`).upload(text, Buffer.byteLength(text), { blobHTTPHeaders: { blobContentType: "application/json" } });
        } catch (error) {
          throw new StateWriteError(`Cannot write ${where}config.json: ${_describe(error)}`, { path: `${where}config.json`, cause: error });
        }
      },
    },
    async fileMark(name) {
      const { container } = await getClients();
      try {
        const buffer = await container.getBlobClient(_markName(o.prefix, name)).downloadToBuffer();
        const mark = JSON.parse(new TextDecoder().decode(buffer)) as FileMark;
        return typeof mark?.digest === "string" ? mark : undefined;
      } catch (error) {
        if (storageErrorCode(error) === "BlobNotFound" || storageErrorCode(error) === "ContainerNotFound") return undefined;
        throw new DataPlaneError(`Cannot read the ledger's record of ${name} in ${where}: ${_describe(error)}`, { service: "storage", cause: error });
      }
    },
    async markFile(mark) {
      const { container } = await getClients();
      await ensureContainer();
      // The index blob a later run looks the name up in, created once (runners that finished the
      // same file race here: one wins); the winner writes the `usage.file` record of the audit trail.
      const body = JSON.stringify({ ...mark, time: new Date(now()).toISOString() });
      try {
        await container.getBlockBlobClient(_markName(o.prefix, mark.name)).upload(body, Buffer.byteLength(body), { conditions: { ifNoneMatch: "*" } });
      } catch (error) {
        if (storageErrorCode(error) === "BlobAlreadyExists") return;
        throw new AuditWriteError(`Cannot record ${mark.name} as billed in ${where}: ${_describe(error)}`, { path: where, cause: error });
      }
      await appendOne(this.createWriter(), usageFileRecord(mark));
    },
    async importLines({ lines, onProgress }) {
      const { container } = await getClients();
      await ensureContainer();
      const lock = await _acquireLease({ name: "import", waitMs: 60_000, container, prefix: o.prefix, leaseSeconds: o.leaseSeconds ?? LEASE_SECONDS, where: o.blobEndpoint + o.container });
      try {
        return await _importLines({ container, prefix: o.prefix, where, lines, lock, ...(onProgress ? { onProgress } : {}) });
      } finally {
        await lock.release();
      }
    },
  };
}

/** The index blob of a billed usage file: by a hash of its name (any URL makes a valid blob name). */
function _markName(prefix: string, name: string): string {
  return `${prefix}files/${createHash("sha256").update(name).digest("hex")}.json`;
}

/**
 * A one-time move of a file ledger: each record goes, as the very line it was, into
 * `<prefix>log/<its UTC day>/import.jsonl`. Lines already in that blob are left out, so the
 * import can run again (after an interruption, or when the file grew) and copies each record
 * once. Held under the `import` lease, so two imports do not race.
 */
async function _importLines(o: { container: ContainerClient; prefix: string; where: string; lines: AsyncIterable<string>; lock: RunLock; onProgress?: (done: number) => void }): Promise<ImportResult> {
  const result: ImportResult = { read: 0, imported: 0, present: 0, invalid: 0 };
  const byDay = new Map<string, string[]>();
  for await (const raw of o.lines) {
    const line = raw.trim();
    if (line === "") continue;
    result.read++;
    let time = Number.NaN;
    try {
      const value = JSON.parse(line) as { time?: unknown };
      if (typeof value === "object" && value !== null && !Array.isArray(value) && typeof value.time === "string") time = Date.parse(value.time);
    } catch {
      // counted below
    }
    if (Number.isNaN(time)) {
      result.invalid++;
      continue;
    }
    const day = _day(time);
    (byDay.get(day) ?? byDay.set(day, []).get(day)!).push(line);
  }
  const encoder = new TextEncoder();
  for (const [day, dayLines] of [...byDay].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const lost = o.lock.lost();
    if (lost) throw new AuditWriteError(`Cannot import into ${o.where}: ${lost.message}; run the import again (it copies each record once)`, { path: o.where, cause: lost });
    const blob = o.container.getAppendBlobClient(`${o.prefix}log/${day}/import.jsonl`);
    let length = 0;
    const there = new Set<string>();
    try {
      const buffer = await blob.downloadToBuffer();
      length = buffer.length;
      for (const l of new TextDecoder().decode(buffer).split("\n")) if (l !== "") there.add(l);
    } catch (error) {
      if (storageErrorCode(error) !== "BlobNotFound") throw new AuditWriteError(`Cannot read ${blob.name} of ${o.where}: ${_describe(error)}`, { path: o.where, cause: error });
      await blob.createIfNotExists({ blobHTTPHeaders: { blobContentType: "application/x-ndjson" } });
    }
    const missing = dayLines.filter((l) => !there.has(l) && (there.add(l), true));
    result.present += dayLines.length - missing.length;
    let chunk: Uint8Array[] = [];
    let size = 0;
    const put = async () => {
      if (size === 0) return;
      const body = new Uint8Array(size);
      chunk.reduce((at, b) => (body.set(b, at), at + b.length), 0);
      try {
        await blob.appendBlock(body, body.length, { conditions: { appendPosition: length } });
      } catch (error) {
        throw new AuditWriteError(`Cannot append to ${blob.name} of ${o.where}: ${_describe(error)}; run the import again (it copies each record once)`, { path: o.where, cause: error });
      }
      length += body.length;
      chunk = [];
      size = 0;
    };
    for (const l of missing) {
      const bytes = encoder.encode(`${l}\n`);
      if (size + bytes.length > MAX_BLOCK_BYTES) await put();
      chunk.push(bytes);
      size += bytes.length;
      result.imported++;
    }
    await put();
    o.onProgress?.(result.imported + result.present);
  }
  return result;
}

async function _acquireLease(o: Omit<AcquireRunLockOptions, "dir"> & { name?: string; container: ContainerClient; prefix: string; leaseSeconds: number; where: string }): Promise<RunLock> {
  const name = `${o.prefix}locks/${o.name ?? "emit"}.lock`;
  const blob = o.container.getBlockBlobClient(name);
  const path = `${o.where}/${name}`;
  const waitMs = o.waitMs ?? 600_000;
  const pollMs = o.pollMs ?? 200;
  try {
    await blob.upload("", 0, { conditions: { ifNoneMatch: "*" } });
  } catch (error) {
    // There already: another run made it (and may hold its lease).
    const code = storageErrorCode(error);
    if (code !== "BlobAlreadyExists" && code !== "LeaseIdMissing" && _status(error) !== 409 && _status(error) !== 412) {
      throw new StateWriteError(`Cannot create the lock ${path}: ${_describe(error)}; nothing was done`, { path, cause: error });
    }
  }
  const info: LockInfo = { pid: process.pid, host: hostname(), token: randomUUID(), startedAt: new Date().toISOString() };
  const lease = blob.getBlobLeaseClient(info.token);
  const deadline = performance.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      await lease.acquireLease(o.leaseSeconds);
      break;
    } catch (error) {
      if (storageErrorCode(error) !== "LeaseAlreadyPresent") throw new StateWriteError(`Cannot take the lease on ${path}: ${_describe(error)}; nothing was done`, { path, cause: error });
    }
    const holder = await _holderOf(blob);
    // The holder's process is gone (this host): take its lease over now, not after it expires.
    if (holder?.info && holder.info.host === hostname() && !processExists(holder.info.pid) && holder.leaseId) {
      const taken = await blob.getBlobLeaseClient(holder.leaseId).changeLease(info.token).then(() => true, () => false);
      // Else someone took it over first, or the metadata is an older holder's: wait as usual.
      if (taken) break;
    }
    if (performance.now() >= deadline) {
      const who = holder?.info ? `process ${holder.info.pid} on ${holder.info.host}, running since ${holder.info.startedAt}` : "another run";
      throw new RunLockedError(`Cannot start: ${who} holds the lease on ${path}; wait for it to finish (a lease left by a run that died expires within ${o.leaseSeconds} s)`, { path });
    }
    if (!told) {
      o.onWait?.(holder?.info);
      told = true;
    }
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - performance.now()))));
  }
  // Who holds it, for the runs that wait (and the lease id, so a run on this host can take it
  // over at once if this process dies: a coordination token, not a credential).
  await blob.setMetadata({ pid: String(info.pid), host: info.host, startedat: info.startedAt, leaseid: info.token }, { conditions: { leaseId: info.token } }).catch(() => {});
  let renewedAt = performance.now();
  let lost: Error | undefined;
  const graceMs = o.leaseSeconds * 750;
  const timer = setInterval(() => {
    const sentAt = performance.now();
    lease.renewLease().then(() => void (renewedAt = sentAt), (error) => {
      const code = storageErrorCode(error);
      if (code?.startsWith("LeaseIdMismatch") || code?.startsWith("LeaseNotPresent") || code === "LeaseLost") lost ??= new RunLockedError(`Lost the lease on ${path}: ${_describe(error)}`, { path });
    });
  }, (o.leaseSeconds * 1000) / 4);
  (timer as { unref?: () => void }).unref?.();
  return {
    path,
    info,
    lost() {
      if (!lost && performance.now() - renewedAt > graceMs) {
        lost = new RunLockedError(`Lost the lease on ${path}: not renewed for ${Math.round((performance.now() - renewedAt) / 1000)} s (storage unreachable?)`, { path });
      }
      return lost;
    },
    async release() {
      clearInterval(timer);
      await lease.releaseLease().catch(() => {});
    },
  };
}

async function _holderOf(blob: import("@azure/storage-blob").BlockBlobClient): Promise<{ info?: LockInfo; leaseId?: string } | undefined> {
  try {
    const { metadata } = await blob.getProperties();
    if (!metadata?.pid || !metadata.host) return {};
    return { info: { pid: Number(metadata.pid), host: metadata.host, token: metadata.leaseid ?? "", startedAt: metadata.startedat ?? "" }, ...(metadata.leaseid ? { leaseId: metadata.leaseid } : {}) };
  } catch {
    return undefined;
  }
}
