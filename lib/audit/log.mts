// audit.jsonl: an append-only log of every request to the metering API and its answer, one
// JSON object per line. It holds decoded token claims for accountability but never a token,
// an assertion or a signature: a guard refuses any record that looks like it holds one where
// one can be (`_secretsOf`).
import { Buffer } from "node:buffer";
import { createReadStream } from "node:fs";
import { mkdir, open, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { dirname } from "node:path";
import { AuditLeakError, AuditWriteError, describeWriteError } from "../core/errors.mts";
import { writeFully } from "../core/durable-write.mts";
import type { AuditEntry } from "./records.mts";

export interface AuditRecord {
  /** ISO 8601 UTC time the record was written. */
  time: string;
  /** What happened, e.g. `usageEvent.intent`, `usageEvent`. */
  operation: string;
  /** Links an intent record to its outcome record. */
  id?: string;
  customer?: { subscriptionId: string; managedResourceGroup: string };
  request?: { method: string; url: string; headers: Record<string, string>; body: unknown };
  response?: { status: number; requestId?: string; correlationId?: string; body: unknown };
  /** Claims of the access token used (decoded, unsigned; no signature). */
  tokenClaims?: Record<string, unknown>;
  [key: string]: unknown;
}

// A compact JWS/JWT: base64url header starting `{"` (eyJ), payload, signature.
const JWT_RE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/;
const SECRET_KEYS = new Set(["authorization", "client_assertion", "access_token", "refresh_token", "id_token", "assertion", "client_secret", "password", "token"]);

/** Header names and values to log: everything except Authorization, cookies and similar. */
export function redactHeaders(headers: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower === "authorization" || lower === "cookie" || lower === "set-cookie" || lower === "proxy-authorization") continue;
    out[lower] = value;
  }
  return out;
}

/**
 * Paths inside `value` that look like secrets: JWT-shaped strings, `Bearer …` strings, or
 * keys such as authorization / access_token / client_assertion with a value. Pure.
 */
export function findSecrets(value: unknown, path = "$"): string[] {
  if (typeof value === "string") {
    return JWT_RE.test(value) || /^bearer\s+\S/i.test(value) ? [path] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => findSecrets(v, `${path}[${i}]`));
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => {
      const here = `${path}.${k}`;
      if (SECRET_KEYS.has(k.toLowerCase()) && v !== undefined && v !== null && v !== "") return [here];
      return findSecrets(v, here);
    });
  }
  return [];
}

/** Builds a record with the current time; drops Authorization from request headers. Pure apart from the clock. */
export function buildAuditRecord(options: Omit<AuditRecord, "time"> & { now?: Date | number }): AuditRecord {
  const { now, ...rest } = options;
  const record = { time: new Date(now === undefined ? Date.now() : +now).toISOString(), ...rest } as AuditRecord;
  if (record.request) record.request = { ...record.request, headers: redactHeaders(record.request.headers ?? {}) };
  return record;
}

const _USAGE_OPERATIONS = new Set(["usageEvent", "batchUsageEvent", "usageEvent.intent", "batchUsageEvent.intent"]);

/**
 * Where a record can hold a token. A usage record (two per batch, the bulk of the log) is
 * built in lib/audit/records.mts from config.json, the input rows and the metering API's
 * answer, which echoes the events sent; a token could reach it only through the request's
 * URL or headers (the writer drops Authorization), the error (an SDK's message) or the token
 * claims, so only those are walked, not the 25 events twice over. Any other record kind (an
 * exchange with a data-plane service, a change) is walked whole.
 */
function _secretsOf(record: AuditRecord): string[] {
  if (!_USAGE_OPERATIONS.has(record.operation)) return findSecrets(record);
  const { response } = record;
  return [
    ...(record.request ? [...findSecrets(record.request.url, "$.request.url"), ...findSecrets(record.request.headers, "$.request.headers")] : []),
    ...findSecrets(record.error, "$.error"),
    ...findSecrets(record.tokenClaims, "$.tokenClaims"),
    ...(response ? findSecrets({ ...response, body: undefined }, "$.response") : []),
  ];
}

/** Serialises a record to one line, refusing anything that looks like a token where one can be. */
export function serializeAuditRecord(record: AuditRecord): string {
  const leaks = _secretsOf(record);
  if (leaks.length > 0) {
    throw new AuditLeakError(`Cannot write audit record ${record.operation}: it holds what looks like a token at ${leaks.join(", ")}`);
  }
  const line = JSON.stringify(record);
  if (line.includes("\n")) throw new AuditLeakError("Cannot write audit record: serialised record spans lines");
  return line;
}

/** Writes whole records (every byte, fsynced) or throws AuditWriteError with the cause. */
async function _writeDurably(handle: Awaited<ReturnType<typeof open>>, text: string | Uint8Array, path: string): Promise<{ syncMs: number }> {
  try {
    return await writeFully(handle, text);
  } catch (cause) {
    const errno = (cause as NodeJS.ErrnoException)?.code;
    throw new AuditWriteError(`Cannot write to ${path}: ${describeWriteError(cause)}`, { path, cause, ...(errno ? { errno } : {}) });
  }
}

/** Opens (creating, mode 0600, directory 0700) the log for appending; whether its last line lacks a newline. */
async function _openForAppend(path: string): Promise<{ handle: Awaited<ReturnType<typeof open>>; torn: boolean }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    handle = await open(path, "a+", 0o600);
  } catch (cause) {
    const errno = (cause as NodeJS.ErrnoException)?.code;
    throw new AuditWriteError(`Cannot open ${path} for appending: ${describeWriteError(cause)}`, { path, cause, ...(errno ? { errno } : {}) });
  }
  try {
    const { size } = await handle.stat();
    let torn = false;
    if (size > 0) {
      const last = new Uint8Array(1);
      await handle.read(last, 0, 1, size - 1);
      torn = last[0] !== 0x0a;
    }
    return { handle, torn };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * How far out of time order two records of audit.jsonl can be. Records are appended in the
 * order they are written, stamped with the writer's clock; two processes (a run and a
 * disconnect, say) or two machines sharing the Cloud Shell drive differ by seconds, not hours.
 * A clock set back by more than this would hide records from `scanAuditLog({ sinceMs })`.
 */
export const AUDIT_ORDER_SLACK_MS = 6 * 3_600_000;

/** Below this distance the search stops and the rest is read: reading 1 MiB costs less than seeking. */
const SEARCH_SPAN = 1 << 20;
const PROBE_CHUNK = 64 * 1024;

/**
 * Streams audit.jsonl record by record (memory stays flat however long the log is); a
 * missing file has no records. Lines that are not JSON objects (a torn write) are skipped
 * and counted.
 *
 * With `sinceMs`, only the part of the log that can hold records written at or after it is
 * read: a binary search over the file (by each line's `time`) finds where records older than
 * `sinceMs - AUDIT_ORDER_SLACK_MS` end, so an hourly run reads the last two days, not months.
 * Records before that point are not passed on; records after it are, whatever their time.
 *
 * `endOffset` is where the last whole line ends: a scan with `fromOffset` set to it passes on
 * only the records written since (a line still being written at the end is read next time).
 */
export async function scanAuditLog(options: { path: string; onRecord: (record: AuditRecord) => void; sinceMs?: number; fromOffset?: number }): Promise<{ records: number; invalidLines: number; startOffset: number; endOffset: number }> {
  let records = 0;
  let invalidLines = 0;
  let startOffset = options.fromOffset ?? 0;
  const none = { records: 0, invalidLines: 0, startOffset, endOffset: startOffset };
  let size: number;
  try {
    size = (await stat(options.path)).size;
    if (options.sinceMs !== undefined && options.fromOffset === undefined) startOffset = await _offsetSince(options.path, options.sinceMs - AUDIT_ORDER_SLACK_MS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return none;
    throw error;
  }
  if (startOffset >= size) return { ...none, startOffset, endOffset: startOffset };
  // Only what was there when the scan began: a writer appending meanwhile is read next time.
  const stream = createReadStream(options.path, { encoding: "utf8", start: startOffset, end: size - 1 });
  let endOffset = startOffset;
  try {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    for await (const raw of lines) {
      const lineStart = endOffset;
      endOffset += Buffer.byteLength(raw) + 1;
      const record = parseRecordLine(raw);
      if (record === undefined) continue;
      if (record === "invalid") {
        invalidLines++;
        // The last line, without its newline: a later scan starts there again.
        if (endOffset > size) endOffset = lineStart;
        continue;
      }
      records++;
      options.onRecord(record);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return none;
    throw error;
  } finally {
    stream.destroy();
  }
  // A whole record on a last line without a newline counts as read.
  if (endOffset > size) endOffset = size;
  return { records, invalidLines, startOffset, endOffset };
}

/** One line of a log: its record, `undefined` for a blank line, `"invalid"` for one that is not a JSON object (a torn write). */
export function parseRecordLine(raw: string): AuditRecord | "invalid" | undefined {
  if (raw.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return "invalid";
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as AuditRecord : "invalid";
}

/**
 * A line start in the file such that no record before it was written at or after
 * `thresholdMs + AUDIT_ORDER_SLACK_MS`: the start of a line whose record is older than
 * `thresholdMs` (or 0). Binary search; a line without a readable time counts as new, which
 * only makes the search read more.
 */
async function _offsetSince(path: string, thresholdMs: number): Promise<number> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    let lo = 0;
    let hi = size;
    while (hi - lo > SEARCH_SPAN) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const probe = await _lineAfter(handle, mid, size);
      if (probe && probe.time < thresholdMs) lo = probe.start;
      else hi = mid;
    }
    return lo;
  } finally {
    await handle.close();
  }
}

/** The first line that starts after byte `pos` (pos itself excluded) and its record's time, if any. */
async function _lineAfter(handle: Awaited<ReturnType<typeof open>>, pos: number, size: number): Promise<{ start: number; time: number } | undefined> {
  const chunk = new Uint8Array(PROBE_CHUNK);
  let at = pos;
  let start = -1;
  const bytes: Uint8Array[] = [];
  while (at < size) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, at);
    if (bytesRead === 0) break;
    let from = 0;
    if (start < 0) {
      const nl = chunk.subarray(0, bytesRead).indexOf(0x0a);
      if (nl < 0) {
        at += bytesRead;
        continue;
      }
      start = at + nl + 1;
      from = nl + 1;
    }
    const end = chunk.subarray(from, bytesRead).indexOf(0x0a);
    if (end >= 0) {
      bytes.push(chunk.slice(from, from + end));
      break;
    }
    bytes.push(chunk.slice(from, bytesRead));
    at += bytesRead;
  }
  if (start < 0 || start >= size) return undefined;
  const joined = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  bytes.reduce((at, b) => (joined.set(b, at), at + b.length), 0);
  const line = new TextDecoder().decode(joined);
  let time = Number.NaN;
  try {
    const value = JSON.parse(line) as { time?: unknown };
    if (typeof value?.time === "string") time = Date.parse(value.time);
  } catch {
    // a torn line: its time is unknown
  }
  return { start, time: Number.isNaN(time) ? Infinity : time };
}

const _encoder = new TextEncoder();

/** What a writer did: records appended, and the writes (one fsync each) that held them. */
export interface AuditWriterStats {
  records: number;
  /** write + fsync rounds: fewer than records when appends shared one (group commit). */
  writes: number;
  /** Time spent in fsync, summed over the writes. */
  syncMs: number;
  bytes: number;
}

export interface AuditWriter {
  /** Appends one record (time added, Authorization dropped, leak guard applied); resolves once an fsync covers it. */
  append(record: AuditEntry): Promise<void>;
  /** Counts so far (the benchmark reports them). */
  stats(): AuditWriterStats;
  close(): Promise<void>;
}

/**
 * Where a writer's bytes go: `write` makes whole lines durable (fsynced, or acknowledged by the
 * service) or throws AuditWriteError; `where` names the place in messages.
 */
export interface RecordSink {
  readonly where: string;
  write(lines: string[]): Promise<{ syncMs: number; bytes: number }>;
  close(): Promise<void>;
}

/** audit.jsonl as a sink: one write and one fsync per call; a torn last line is closed with a newline first. */
async function _fileSink(path: string): Promise<RecordSink> {
  const opened = await _openForAppend(path);
  const { handle } = opened;
  let needsNewline = opened.torn;
  return {
    where: path,
    async write(lines) {
      const bytes = _encoder.encode(`${needsNewline ? "\n" : ""}${lines.map((l) => `${l}\n`).join("")}`);
      // Until this write is known complete, the file may end mid-line.
      needsNewline = true;
      const { syncMs } = await _writeDurably(handle, bytes, path);
      needsNewline = false;
      return { syncMs, bytes: bytes.length };
    },
    close: () => handle.close(),
  };
}

/**
 * An open audit log for many appends: one handle, records in call order, each append's
 * promise resolved only after the fsync that covers its record. Group commit: the appends made
 * while a write is under way wait for it, then all go out together in one write and one fsync
 * (64 batches in flight make a few writes, not 128 fsyncs one after another); a record is no
 * less durable than alone, and is never reported written before it is. A torn last line left
 * by a killed run is closed with a newline first. After one write fails (AuditWriteError) every
 * record of it and every later append fails too, with the same cause: the log's end is no
 * longer known, and a run must not go on as if later records were safe.
 */
export async function createAuditWriter(options: { path: string }): Promise<AuditWriter> {
  return createRecordWriter(await _fileSink(options.path));
}

/** The group-committing writer of createAuditWriter over any sink (a file, append blobs). */
export function createRecordWriter(sink: RecordSink): AuditWriter {
  let broken: AuditWriteError | undefined;
  let closed = false;
  type _Pending = { line: string; resolve: () => void; reject: (error: unknown) => void };
  let pending: _Pending[] = [];
  let writing: Promise<void> | undefined;
  const stats: AuditWriterStats = { records: 0, writes: 0, syncMs: 0, bytes: 0 };
  const flush = async () => {
    while (pending.length > 0) {
      const group = pending;
      pending = [];
      if (broken) {
        for (const p of group) p.reject(broken);
        continue;
      }
      try {
        const { syncMs, bytes } = await sink.write(group.map((p) => p.line));
        stats.records += group.length;
        stats.writes++;
        stats.syncMs += syncMs;
        stats.bytes += bytes;
      } catch (error) {
        broken = error instanceof AuditWriteError ? error : new AuditWriteError(`Cannot write to ${sink.where}: ${describeWriteError(error)}`, { path: sink.where, cause: error });
        for (const p of group) p.reject(broken);
        continue;
      }
      for (const p of group) p.resolve();
    }
    writing = undefined;
  };
  return {
    append(record) {
      if (closed) return Promise.reject(new Error("Cannot append to the audit log: the writer is closed"));
      let line: string;
      try {
        line = serializeAuditRecord(buildAuditRecord(record as Omit<AuditRecord, "time">));
      } catch (error) {
        return Promise.reject(error);
      }
      if (broken) return Promise.reject(broken);
      const done = new Promise<void>((resolve, reject) => pending.push({ line, resolve, reject }));
      // Started after the current turn, so appends made in the same turn share the first write too.
      writing ??= Promise.resolve().then(flush);
      return done;
    },
    stats: () => ({ ...stats }),
    async close() {
      if (closed) return;
      closed = true;
      while (writing) await writing;
      await sink.close();
    },
  };
}
