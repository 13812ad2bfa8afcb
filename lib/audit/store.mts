// Where the audit log (the billing ledger) lives: a store. Every reader and writer of the log
// goes through one, so a run on one machine with a local audit.jsonl and many runners sharing
// append blobs in Azure Storage follow the same exactly-once rules. A store gives:
// - writers: records in call order, each append resolved only once it is durable (fsynced, or
//   the Append Block acknowledged);
// - a scan: every record that can be written at or after `sinceMs` (all records without it),
//   streamed, with an optional cursor so a runner that holds the ledger in memory reads only
//   what was written since its last scan;
// - the run lock (a lock file, or a blob lease): one holder per name at a time.
// The record format is the same in every store; `lib/audit/blob-store.mts` is the blob one.
import { dirname } from "node:path";
import { UsageError } from "../core/errors.mts";
import type { AcquireRunLockOptions, RunLock } from "../core/lock.mts";
import { type AuditRecord, type AuditWriter, createAuditWriter, scanAuditLog } from "./log.mts";
import { type AuditEntry, usageFileRecord } from "./records.mts";

/** Where a scan stopped: the next scan with it passes on only what was written after. */
export type ScanCursor = { kind: "file"; offset: number } | { kind: "blob"; read: Record<string, number> };

export interface ScanResult {
  records: number;
  invalidLines: number;
  cursor: ScanCursor;
}

export interface LedgerStore {
  readonly kind: "file" | "blob";
  /** The log as a person finds it: a path, or the blob container's URL and prefix. */
  readonly where: string;
  /** A writer of its own (a blob store gives each writer its own append blobs). */
  createWriter(): Promise<AuditWriter>;
  scan(options: { onRecord: (record: AuditRecord) => void; sinceMs?: number; after?: ScanCursor }): Promise<ScanResult>;
  /** The run lock `name` (default `emit`): a lock file in the data directory, or a blob lease. */
  acquireLock(options: Omit<AcquireRunLockOptions, "dir"> & { name?: string }): Promise<RunLock>;
  /**
   * Copies the records of another log (audit.jsonl's lines) into this store, each once however
   * often it runs (a blob store only; see lib/audit/blob-store.mts).
   */
  importLines?(o: { lines: AsyncIterable<string>; onProgress?: (done: number) => void }): Promise<ImportResult>;
  /**
   * config.json kept beside a blob ledger (`<prefix>config.json`), for runners that have no data
   * directory of their own (a job's replicas): `put` stores a copy, `get` reads it (undefined
   * when none was put). Only a blob store has one.
   */
  sharedConfig?: { get(): Promise<string | undefined>; put(text: string): Promise<void> };
  /** How a usage file (by name, e.g. a blob URL) was billed, if it was: read whatever its age. */
  fileMark(name: string): Promise<FileMark | undefined>;
  /** Records a usage file as billed (a `usage.file` record; in a blob store also an index blob). */
  markFile(mark: FileMark): Promise<void>;
}

/** A usage file billed once: its name, the digest of its bytes, its rows, and when. */
export interface FileMark {
  name: string;
  digest: string;
  rows: number;
  time?: string;
}

/** What an import did: lines read, records copied, records found there already, lines that are not records. */
export interface ImportResult {
  read: number;
  imported: number;
  present: number;
  invalid: number;
}

/** What config.json's `publisher.ledger` (or METERING_LEDGER) names. */
export type LedgerSpec =
  | { kind: "file" }
  | { kind: "blob"; blobEndpoint: string; container: string; prefix: string; shards?: number };

const CONTAINER_RE = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;
const ACCOUNT_RE = /^[a-z0-9]{3,24}$/;

/**
 * True when `name` is a valid blob container name: 3-63 characters, lower-case letters, digits
 * and single hyphens, starting and ending with a letter or digit.
 *
 * @example
 * isContainerName("ledger") // true
 * isContainerName("Ledger--1") // false
 */
export function isContainerName(name: unknown): name is string {
  return typeof name === "string" && CONTAINER_RE.test(name);
}

/**
 * A blob URL as its account's blob endpoint and the path segments after it (container, then the
 * blob or prefix). Azurite and other emulators on an IP or localhost put the account in the path:
 * https://127.0.0.1:10000/devstoreaccount1/container/…
 */
export function splitBlobUrl(text: string): { blobEndpoint: string; path: string[] } {
  const url = new URL(text);
  const segments = url.pathname.split("/").filter(Boolean);
  const accountInPath = /^[0-9.]+$|^localhost$|^\[/.test(url.hostname) ? 1 : 0;
  return { blobEndpoint: blobEndpointOf(`${url.origin}/${segments.slice(0, accountInPath).join("/")}`), path: segments.slice(accountInPath) };
}

/** `account` as config names it: a storage account name, or its blob endpoint URL (another cloud, Azurite). */
export function blobEndpointOf(account: string): string {
  if (ACCOUNT_RE.test(account)) return `https://${account}.blob.core.windows.net/`;
  let url: URL;
  try {
    url = new URL(account);
  } catch {
    throw new UsageError(`Cannot use ledger account ${JSON.stringify(account)}: expected a storage account name (3-24 lower-case letters and digits) or a blob endpoint URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError(`Cannot use ledger account ${account}: a blob endpoint is an https:// URL`);
  return url.href.endsWith("/") ? url.href : `${url.href}/`;
}

/**
 * The ledger a configuration names. `value` is config's `publisher.ledger` object, or
 * METERING_LEDGER's text: `file`, or `blob:<account or blob endpoint URL>/<container>[/<prefix>]`
 * (a URL's last path segments are the container and prefix). Throws UsageError naming `source`.
 *
 * @example
 * parseLedgerSpec({ kind: "blob", account: "contosoledger", container: "ledger" }, "config.json publisher.ledger")
 * // { kind: "blob", blobEndpoint: "https://contosoledger.blob.core.windows.net/", container: "ledger", prefix: "" }
 */
export function parseLedgerSpec(value: unknown, source: string): LedgerSpec {
  if (value === undefined || value === null) return { kind: "file" };
  if (typeof value === "string") return _parseLedgerText(value.trim(), source);
  if (typeof value !== "object" || Array.isArray(value)) throw new UsageError(`Cannot use ${source}: expected an object like {"kind": "blob", "account": …, "container": …}`);
  const v = value as Record<string, unknown>;
  if (v.kind === "file") return { kind: "file" };
  if (v.kind !== "blob") throw new UsageError(`Cannot use ${source}: kind must be "file" or "blob", not ${JSON.stringify(v.kind)}`);
  if (typeof v.account !== "string" || v.account === "") throw new UsageError(`Cannot use ${source}: a blob ledger needs "account" (a storage account name or its blob endpoint URL)`);
  if (!isContainerName(v.container)) {
    throw new UsageError(`Cannot use ${source}: "container" must be a container name (3-63 lower-case letters, digits and single hyphens), not ${JSON.stringify(v.container)}`);
  }
  const prefix = v.prefix === undefined ? "" : v.prefix;
  if (typeof prefix !== "string" || /^\/|\/\/|\\/.test(prefix) || prefix.length > 200) throw new UsageError(`Cannot use ${source}: "prefix" must be a relative blob path like "contoso/" (no leading slash)`);
  const spec: LedgerSpec = { kind: "blob", blobEndpoint: blobEndpointOf(v.account), container: v.container, prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/` };
  if (v.shards !== undefined) {
    if (!Number.isInteger(v.shards) || (v.shards as number) < 1 || (v.shards as number) > 1024) throw new UsageError(`Cannot use ${source}: "shards" must be a whole number from 1 to 1024`);
    spec.shards = v.shards as number;
  }
  return spec;
}

function _parseLedgerText(text: string, source: string): LedgerSpec {
  if (text === "" || text === "file") return { kind: "file" };
  if (!text.startsWith("blob:")) throw new UsageError(`Cannot use ${source} ${JSON.stringify(text)}: expected "file" or "blob:<account or blob endpoint URL>/<container>[/<prefix>]"`);
  const rest = text.slice("blob:".length);
  let account: string;
  let path: string[];
  if (/^https?:\/\//.test(rest)) ({ blobEndpoint: account, path } = splitBlobUrl(rest));
  else {
    [account, ...path] = rest.split("/");
  }
  const [container, ...prefix] = path;
  return parseLedgerSpec({ kind: "blob", account, container, prefix: prefix.join("/") }, source);
}

/** The local store: `audit.jsonl` and the `emit.lock` beside it in the data directory. */
export function fileLedgerStore(o: { auditPath: string; dataDir: string }): LedgerStore {
  return {
    kind: "file",
    where: o.auditPath,
    createWriter: () => createAuditWriter({ path: o.auditPath }),
    async scan({ onRecord, sinceMs, after }) {
      const from = after?.kind === "file" ? after.offset : undefined;
      const r = await scanAuditLog({ path: o.auditPath, onRecord, ...(from === undefined && sinceMs !== undefined ? { sinceMs } : {}), ...(from !== undefined ? { fromOffset: from } : {}) });
      return { records: r.records, invalidLines: r.invalidLines, cursor: { kind: "file", offset: r.endOffset } };
    },
    async acquireLock(options) {
      const { acquireRunLock } = await import("../core/lock.mts");
      return acquireRunLock({ ...options, dir: o.dataDir });
    },
    // The whole log is read: a file billed months ago must still be known (a local log is small
    // enough; the blob store keeps an index instead).
    async fileMark(name) {
      let mark: FileMark | undefined;
      await scanAuditLog({ path: o.auditPath, onRecord: (r) => {
        if (r.operation === "usage.file" && r.name === name && typeof r.digest === "string") mark ??= { name, digest: r.digest, rows: Number(r.rows), time: r.time };
      } });
      return mark;
    },
    async markFile(mark) {
      await appendOne(createAuditWriter({ path: o.auditPath }), usageFileRecord(mark));
    },
  };
}

/** Appends one record with a writer of its own, closed after. */
export async function appendOne(writer: Promise<AuditWriter>, record: AuditEntry): Promise<void> {
  const w = await writer;
  try {
    await w.append(record);
  } finally {
    await w.close();
  }
}

/** A store given as such, or by the path of a local audit log (tests, benchmarks, tools reading a copy). */
export function storeOf(o: { store: LedgerStore } | { auditPath: string }): LedgerStore {
  return "store" in o ? o.store : fileLedgerStore({ auditPath: o.auditPath, dataDir: dirname(o.auditPath) });
}

/** The store a spec names; a blob store needs the ISV credential and the SDK's client options. */
export async function openLedgerStore(spec: LedgerSpec, o: {
  auditPath: string;
  dataDir: string;
  credential?: () => Promise<import("@azure/core-auth").TokenCredential>;
  tryTimeoutMs?: number;
}): Promise<LedgerStore> {
  if (spec.kind === "file") return fileLedgerStore(o);
  if (!o.credential) throw new UsageError("Cannot open the blob ledger: no credential");
  const { blobLedgerStore } = await import("./blob-store.mts");
  return blobLedgerStore({ ...spec, credential: await o.credential(), ...(o.tryTimeoutMs ? { tryTimeoutMs: o.tryTimeoutMs } : {}) });
}
