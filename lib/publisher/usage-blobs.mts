// Usage that reaches an unattended run as files in a blob container (`2-emit-meter --from
// blob:<container>[/<prefix>]`): each .csv or .jsonl file under the prefix is billed once. Its
// name (the blob URL) and the SHA-256 of its bytes are recorded in the ledger (a `usage.file`
// record, and for a blob ledger an index blob, so a file is known whatever its age); a file seen
// again with the same bytes is skipped; one that changed under the same name is refused (a file
// of relative hours read again would bill new hours). A file's rows are checked as --file's
// are; a file with bad rows is refused whole (exit 1) and left for the next run to refuse again
// until it is fixed or removed. The files of one run are billed one after another, each a run
// of its own (its own digest: a rerun of a file cut short resumes it).
import { UsageError } from "../core/errors.mts";
import { isContainerName, splitBlobUrl } from "../audit/store.mts";
import { checkRunRows, fileRows, runUsage, type UsageRunOptions, type UsageRunResult } from "../metering/run.mts";
import type { RowProblem } from "../metering/usage-file.mts";
import { summarise } from "../metering/submission.mts";
import type { Publisher } from "./context.mts";

/** Where the files are: a container and a prefix, in the ledger's account unless a URL names another. */
export interface BlobSource {
  blobEndpoint: string;
  container: string;
  prefix: string;
}

/** What happened to one file. */
export interface BlobFileOutcome {
  name: string;
  status: "billed" | "skipped" | "refused";
  digest: string;
  rows?: number;
  message?: string;
}

/**
 * `blob:<container>[/<prefix>]` (the ledger's storage account) or
 * `blob:<blob endpoint URL>/<container>[/<prefix>]`. Throws UsageError.
 */
export function parseBlobSource(text: string, ledger: Publisher["ledgerSpec"]): BlobSource {
  if (!text.startsWith("blob:")) throw new UsageError(`Cannot use --from ${JSON.stringify(text)}: expected blob:<container>[/<prefix>] or blob:<blob endpoint URL>/<container>[/<prefix>]`);
  const rest = text.slice("blob:".length);
  let blobEndpoint: string;
  let path: string[];
  if (/^https?:\/\//.test(rest)) ({ blobEndpoint, path } = splitBlobUrl(rest));
  else {
    if (ledger.kind !== "blob") throw new UsageError(`Cannot use --from ${text}: it names a container of the ledger's storage account, and the ledger is the local file; name the account: blob:https://<account>.blob.core.windows.net/<container>`);
    blobEndpoint = ledger.blobEndpoint;
    path = rest.split("/").filter(Boolean);
  }
  const [container, ...prefix] = path;
  if (!isContainerName(container)) throw new UsageError(`Cannot use --from ${text}: ${JSON.stringify(container ?? "")} is not a container name`);
  const p = prefix.join("/");
  return { blobEndpoint, container, prefix: p === "" || rest.endsWith("/") ? (p ? `${p}/` : "") : p };
}

/**
 * Bills every new usage file under `source`, one after another; returns each file's outcome
 * and the runs' results merged (reports, counts).
 */
export async function runUsageFromBlobs(o: Omit<UsageRunOptions, "rows" | "digest" | "source" | "publisher" | "skipped"> & {
  publisher: Publisher;
  source: BlobSource;
  read: { format: string | undefined; now: number; maxQuantity: number; aggregate: boolean; skipInvalid: boolean };
  onFile?: (file: BlobFileOutcome) => void;
}): Promise<{ files: BlobFileOutcome[]; result: UsageRunResult; skipped: RowProblem[] }> {
  const { publisher, source } = o;
  const store = await publisher.ledger();
  const { BlobServiceClient } = await import("@azure/storage-blob");
  const container = new BlobServiceClient(source.blobEndpoint, await publisher.credential(), { retryOptions: { maxTries: 4, tryTimeoutInMs: publisher.settings.httpTryTimeoutMs } })
    .getContainerClient(source.container);
  const names: string[] = [];
  for await (const b of container.listBlobsFlat({ prefix: source.prefix })) if (/\.(csv|jsonl)$/i.test(b.name)) names.push(b.name);
  names.sort();
  const files: BlobFileOutcome[] = [];
  const merged: UsageRunResult = { plan: { work: [], settled: [], unknown: [] } as unknown as UsageRunResult["plan"], reports: [], counts: {}, ok: true, customers: 0 };
  const skipped: RowProblem[] = [];
  const tell = (f: BlobFileOutcome) => (files.push(f), o.onFile?.(f));
  for (const name of names) {
    const blob = container.getBlobClient(name);
    const url = blob.url;
    const bytes = await blob.downloadToBuffer();
    const { createHash } = await import("node:crypto");
    const digest = createHash("sha256").update(bytes).digest("hex");
    const mark = await store.fileMark(url);
    if (mark?.digest === digest) {
      tell({ name: url, status: "skipped", digest, rows: mark.rows, message: `billed already${mark.time ? ` (${mark.time})` : ""}` });
      continue;
    }
    if (mark) {
      tell({ name: url, status: "refused", digest, message: `it changed since it was billed${mark.time ? ` at ${mark.time}` : ""} (SHA-256 ${mark.digest.slice(0, 12)}… then, ${digest.slice(0, 12)}… now); a usage file is billed once: put corrections in a new file` });
      continue;
    }
    let input;
    try {
      const read = await fileRows(name, { format: o.read.format, now: o.read.now, maxQuantity: o.read.maxQuantity, aggregate: o.read.aggregate, stdin: _chunksOf(), chunks: _chunksOf(bytes) });
      input = checkRunRows({ ...read, source: url }, publisher, { skipInvalid: o.read.skipInvalid });
    } catch (error) {
      if ((error as { code?: string }).code !== "ERR_INPUT" && (error as { code?: string }).code !== "ERR_USAGE") throw error;
      tell({ name: url, status: "refused", digest, message: String((error as Error).message) });
      continue;
    }
    skipped.push(...input.problems);
    // Raw records summed (--aggregate): late usage by this file's own lines.
    const late = o.read.aggregate ? { policy: o.late?.policy ?? "reject", ...(input.linesOf ? { linesOf: input.linesOf } : {}) } : undefined;
    const result = await runUsage({ ...o, publisher, rows: input.rows, digest: input.digest, source: url, skipped: input.problems, ...(late ? { late } : {}) });
    merged.reports.push(...result.reports);
    merged.plan.unknown.push(...result.plan.unknown);
    merged.customers += result.customers;
    await store.markFile({ name: url, digest, rows: input.rows.length });
    tell({ name: url, status: "billed", digest, rows: input.rows.length });
  }
  const { counts, ok } = summarise(merged.reports);
  merged.counts = counts;
  merged.ok = ok && files.every((f) => f.status !== "refused");
  return { files, result: merged, skipped };
}

async function* _chunksOf(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* parts;
}
