// One run of 2-emit-meter, between parsing and printing: read the input, finish an unfinished
// run of the same input, take the run lock, plan from the audit log and send through the
// publisher context. Never prints: what a person should read goes to `onNote`.
import { createReadStream } from "node:fs";
import { once } from "node:events";
import { InputError, UsageError } from "../core/errors.mts";
import { checkRows, formatOfPath, inputDigest, readUsageFile, UsageRows, type ParseOptions, type ParsedUsageFile, type RowProblem } from "./usage-file.mts";
import { RowAggregator, type Aggregated } from "./aggregate.mts";
import { settleLateRows, type LateOutcome, type LatePolicy } from "./late.mts";
import { dueCharges, type Meter } from "./meters.mts";
import { effectiveStartTime } from "./time.mts";
import { loadLedger, planSubmission, resolveRunInstant, summarise, type EventReport, type SubmissionPlan } from "./submission.mts";
import type { Ledger, RunInput } from "./ledger.mts";
import { refreshLedger } from "./submission.mts";
import { rowsByShard, shardFinder, shardLockName } from "./shards.mts";
export { MAX_SHARDS } from "./shards.mts";
import { RunLockedError } from "../core/errors.mts";
import type { RunLock } from "../core/lock.mts";
import type { LedgerStore, ScanCursor } from "../audit/store.mts";
import type { MeteringConfig } from "../state/config.mts";
import { describeUsageRequest, type MeteringClient, type UsageRequestDescription } from "./api.mts";
import type { FederatedToken } from "../identity/federation.mts";
import type { CustomerRef } from "../state/customers.mts";
import type { CustomerConfig } from "../state/config.mts";

/** What a run needs of the publisher context (lib/publisher/context.mts gives all of it). */
export interface UsageRunContext {
  /** The ledger's store (lib/audit/store.mts). */
  ledger(): Promise<LedgerStore>;
  config: MeteringConfig;
  meteringClient(): Promise<MeteringClient>;
  session(ref: CustomerRef, customer?: CustomerConfig): { getToken(): Promise<FederatedToken> };
  /** Lets go of a customer's session (its credential and cached token): the run is done with it. */
  endSession?(ref: CustomerRef, customer?: CustomerConfig): void;
  /** The publisher's Entra app (config publisher.app): one token for every customer (`as: "publisher-app"`). */
  publisherApp?(): { getToken(): Promise<FederatedToken> };
}

/** Who signs in to send usage: each customer's UAMI (one token per customer), or the publisher app (one for all). */
export type MeterAs = "uami" | "publisher-app";

/** A token is taken again when it has less than this left (a long central run outlives one). */
const CENTRAL_TOKEN_MARGIN_MS = 5 * 60_000;

/**
 * The publisher app's token, shared by every customer of a run: one assertion signed and one
 * exchange however many customers are sent at once (concurrent callers wait for the same one).
 */
function _centralToken(source: { getToken(): Promise<FederatedToken> }): () => Promise<FederatedToken> {
  let current: Promise<FederatedToken> | undefined;
  // 0 while the request is pending: callers share it.
  let expiresOnMs = 0;
  return () => {
    if (!current || (expiresOnMs > 0 && expiresOnMs - Date.now() < CENTRAL_TOKEN_MARGIN_MS)) {
      const p = source.getToken();
      current = p;
      expiresOnMs = 0;
      // A failed request is not kept: the next customer asks again.
      p.then((t) => { if (current === p) expiresOnMs = t.expiresOnTimestamp; }, () => { if (current === p) current = undefined; });
    }
    return current;
  };
}
import type { SubmissionProgress } from "./submission.mts";
import type { AuditWriterStats } from "../audit/log.mts";

/** Events per call of batchUsageEvent. */
const BATCH = 25;

/** The most requests a run keeps in flight (`--concurrency` accepts 1 to this). */
export const MAX_CONCURRENCY = 64;

/**
 * Requests in flight when `--concurrency` is not given: one per batch call of the plan, at most
 * MAX_CONCURRENCY. A request slot spends nearly all its time waiting on the network (a Key Vault
 * signature, a token exchange and a metering call each take 30 to 300 ms in Azure), not on CPU,
 * so a run takes about ceil(customers / slots) times that chain: 8 slots made 400 customers
 * take 27 s where 64 take 8 s. More slots than batch calls would stay idle; past 64 the client
 * holds more requests, sockets and answers at once (memory: 313–330 MB at 64 for 400 customers
 * in the benchmark, 216 MB at 8) and sends bigger bursts to one tenant's Entra and to the
 * metering API, for little more speed.
 */
export function defaultConcurrency(shape: { batchCalls: number }): number {
  return Math.max(1, Math.min(MAX_CONCURRENCY, shape.batchCalls));
}

/**
 * Reads a usage file (a path, or - for `stdin`) as a stream, line by line, into checked rows
 * and the input's digest. Bad rows are returned as problems, not thrown; an unreadable file or
 * a format that cannot be told is an InputError / UsageError (exit 2).
 */
async function readUsageInput(file: string, options: {
  format: string | undefined;
  now: number;
  maxQuantity: number;
  stdin: AsyncIterable<Uint8Array>;
  /** The input's bytes when they come from elsewhere than a local file (a blob); `file` names it. */
  chunks?: AsyncIterable<Uint8Array>;
  /** Where good rows go as they are read, instead of the result's rows. */
  sink?: ParseOptions["sink"];
  acceptPast?: boolean;
}): Promise<ParsedUsageFile> {
  const { format } = options;
  if (format !== undefined && format !== "csv" && format !== "jsonl") {
    throw new UsageError(`Cannot use --format ${JSON.stringify(format)}: expected csv or jsonl`);
  }
  // stdin has no name: its first line says (a JSON object: JSON Lines; else CSV).
  const chosen = (format as "csv" | "jsonl" | undefined) ?? (file === "-" ? undefined : formatOfPath(file));
  if (file !== "-" && !chosen) throw new UsageError(`Cannot tell the format of ${file}: name it .csv or .jsonl, or pass --format csv|jsonl`);
  const cannotRead = (cause: unknown) =>
    new InputError(`Cannot read --file ${file}: ${(cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (cause as Error).message}`, { cause });
  let chunks: AsyncIterable<Uint8Array>;
  if (options.chunks) chunks = options.chunks;
  else if (file === "-") chunks = options.stdin;
  else {
    const stream = createReadStream(file);
    try {
      await once(stream, "open");
    } catch (cause) {
      throw cannotRead(cause);
    }
    chunks = stream;
  }
  try {
    return await readUsageFile(chunks, { format: chosen, now: options.now, maxQuantity: options.maxQuantity, sink: options.sink, acceptPast: options.acceptPast });
  } catch (cause) {
    // A read that fails half-way (EISDIR, EIO): nothing was parsed that could be sent.
    if ((cause as NodeJS.ErrnoException)?.code) throw cannotRead(cause);
    throw cause;
  }
}

/** The one error for an input with bad rows: nothing was sent. */
function problemsError(problems: RowProblem[], source: string): InputError {
  return new InputError(
    `Cannot send ${source}: ${problems.length} bad row(s); nothing was sent (fix them, or pass --skip-invalid to send the rest)`,
    { problems },
  );
}

/**
 * Rows resolved against the instant of an unfinished earlier run of the same input, when
 * there is one (so the rerun finishes it and bills no row twice); otherwise as they are.
 */
function resumeIfUnfinished(o: {
  rows: UsageRows;
  ledger: Ledger;
  digest: string | undefined;
  now: number;
  config: MeteringConfig;
  source: string;
  onNote?: (text: string) => void;
}): { rows: UsageRows; input?: RunInput } {
  if (o.digest === undefined) return { rows: o.rows };
  const { input, resumed } = resolveRunInstant({ ledger: o.ledger, digest: o.digest, now: o.now });
  if (!resumed) return { rows: o.rows, input };
  let relative = false;
  for (let i = 0; i < o.rows.length && !relative; i++) relative = o.rows.fieldAt(i, "hoursAgo") !== undefined;
  if (!relative) return { rows: o.rows, input };
  o.onNote?.(`This input was sent by a run at ${input.resolvedAt} that did not finish: finishing that run (hours-ago counted from ${input.resolvedAt}, so no row is billed twice). Run it again afterwards to bill the current hours.`);
  const rows = o.rows.resolvedAgainst(Date.parse(input.resolvedAt));
  // Moved hours-ago rows may now name the hour of a row with an absolute time.
  const checked = checkRows(rows, o.config);
  if (checked.problems.length > 0) throw problemsError(checked.problems, o.source);
  return { rows: checked.rows, input };
}

/** Customers and batch calls of a plan's work, counted without a string per event (a million of them). */
export function planShape(plan: SubmissionPlan): { customers: number; batchCalls: number } {
  const perSubscription = new Map<string, Map<string, number>>();
  for (const { customer } of plan.work) {
    let groups = perSubscription.get(customer.subscriptionId);
    if (!groups) perSubscription.set(customer.subscriptionId, groups = new Map());
    groups.set(customer.managedResourceGroup, (groups.get(customer.managedResourceGroup) ?? 0) + 1);
  }
  let customers = 0;
  let batchCalls = 0;
  for (const groups of perSubscription.values()) {
    for (const n of groups.values()) {
      customers++;
      batchCalls += Math.ceil(n / BATCH);
    }
  }
  return { customers, batchCalls };
}

export interface UsageRunOptions {
  publisher: UsageRunContext;
  rows: UsageRows;
  digest: string | undefined;
  /** How the input is named in messages (`the event`, a file name, `stdin`). */
  source: string;
  /** One event from the arguments: sent with usageEvent, not batchUsageEvent. */
  single: boolean;
  /** Only earlier runs' events without an outcome (reads the whole audit log). */
  resend: boolean;
  force: boolean;
  /** Requests in flight at once; default defaultConcurrency(the plan). */
  concurrency?: number;
  waitLockMs: number;
  /** Bad rows left out with --skip-invalid: each is noted once the lock is held. */
  skipped?: RowProblem[];
  /** Raw records summed (--aggregate): late usage is rejected or carried (lib/metering/late.mts). */
  late?: { policy: LatePolicy; linesOf?: Aggregated["linesOf"] };
  /** Recurring charges (--meters): those due are planned with the rows (lib/metering/meters.mts). */
  meters?: Meter[];
  onNote?: (text: string) => void;
  onProgress?: (progress: SubmissionProgress, total: number) => void;
  /** Default `uami`. */
  as?: MeterAs;
  /** Customers divided into this many shards, each under its own lock (default 1: one lock for all). */
  shards?: number;
}

/** What a dry run would do: the plan, read under no lock, nothing signed, sent or written. */
export async function planUsageRun(o: Omit<UsageRunOptions, "concurrency" | "waitLockMs" | "skipped">): Promise<SubmissionPlan> {
  const now = Date.now();
  const { ledger } = await loadLedger({ store: await o.publisher.ledger(), now, unresolved: o.resend });
  return _plan(o, ledger, now).plan;
}

/** The plan of a run from the ledger: an unfinished earlier run of the input resumed, late raw usage settled. */
function _plan(o: Omit<UsageRunOptions, "concurrency" | "waitLockMs" | "skipped">, ledger: Ledger, now: number, shardRows?: (rows: UsageRows) => UsageRows) {
  const run = resumeIfUnfinished({ rows: o.rows, ledger, digest: o.digest, now, config: o.publisher.config, source: o.source, onNote: o.onNote });
  // A shard plans its customers' rows only (every step after the resume is per customer), not
  // the whole input each time: with N shards a runner did N times the planning of one.
  const mine = shardRows ? shardRows(run.rows) : run.rows;
  const late = o.late && o.digest
    ? settleLateRows({ rows: mine, ledger, config: o.publisher.config, digest: o.digest, now, policy: o.late.policy, linesOf: o.late.linesOf })
    : undefined;
  let rows = late?.rows ?? mine;
  const charges = o.meters ? dueCharges({ meters: o.meters, config: o.publisher.config, ledger, now }) : undefined;
  if (charges && charges.rows.length > 0) {
    const both = new UsageRows();
    for (const r of rows) both.push(r);
    for (const r of charges.rows) both.push(r);
    rows = both;
  }
  const plan = planSubmission({ rows, config: o.publisher.config, ledger, force: o.force, now });
  if (late) plan.settled.push(...late.reports);
  if (charges) plan.settled.push(...charges.reports);
  return { plan, run, late, missed: charges?.records ?? [] };
}

export interface UsageRunResult {
  plan: SubmissionPlan;
  /** Settled before sending, sent in this run, and (with --resend) the events of unknown fate. */
  reports: EventReport[];
  counts: Record<string, number>;
  ok: boolean;
  /** Customers this run sent to. */
  customers: number;
  /** The audit log's writes of this run's usage records (group commit: fewer writes than records). */
  audit?: AuditWriterStats;
  /** Late raw usage this run billed in a later hour (--aggregate --late carry). */
  carried?: LateOutcome["carried"];
}

/**
 * One submission run under the run lock of the ledger (two runs could otherwise both send an
 * open event): plan from the audit log, send through the publisher context's metering client
 * and sessions, then summarise. With `shards` > 1, customers are divided into that many shards
 * (lib/metering/shards.mts) and the run takes each free shard's lock in turn (a shard another
 * runner holds is left to it), so any number of runners can start at once over the same input
 * and ledger: together they send every event once, and no customer is sent by two at a time.
 */
export async function runUsage(o: UsageRunOptions): Promise<UsageRunResult> {
  const { publisher } = o;
  const store = await publisher.ledger();
  const shards = o.shards ?? 1;
  const result: UsageRunResult = { plan: { work: [], settled: [], unknown: [] } as unknown as SubmissionPlan, reports: [], counts: {}, ok: true, customers: 0 };
  let view: { ledger: Ledger; cursor: ScanCursor } | undefined;
  let toldSkipped = false;
  const first = shards > 1 ? _firstShard(shards) : 0;
  const shardOfCustomer = shardFinder(shards);
  // Each input's rows divided among the shards once (the input as read, or as a resumed run resolves it).
  const divided = new WeakMap<UsageRows, UsageRows[]>();
  const shardRows = (shard: number) => (rows: UsageRows) => {
    let parts = divided.get(rows);
    if (!parts) divided.set(rows, parts = rowsByShard(rows, shards, shardOfCustomer));
    return parts[shard];
  };
  // Across shards a note is told once (the plan of every shard says the same about the input),
  // and progress is each shard's "Sending …" note: a bar's total is not known in advance.
  const told = new Set<string>();
  const sharded: UsageRunOptions = shards === 1 ? o : {
    ...o,
    onNote: (text) => void (!told.has(text) && (told.add(text), o.onNote?.(text))),
    onProgress: undefined,
  };
  /** Takes each shard's lock in turn and sends its part; with `waitMs` 0 a held shard is returned, not waited for. */
  const pass = async (list: number[], waitMs: number): Promise<number[]> => {
    const busy: number[] = [];
    for (const shard of list) {
      let lock: RunLock;
      try {
        lock = await store.acquireLock({
          name: shards > 1 ? shardLockName(shard, shards) : "emit",
          waitMs,
          onWait: (holder) => o.onNote?.(`Waiting for another run to finish (${holder ? `process ${holder.pid} on ${holder.host}` : "lock held"}; up to ${waitMs / 1000} s)`),
        });
      } catch (error) {
        if (waitMs === 0 && error instanceof RunLockedError) {
          busy.push(shard);
          continue;
        }
        throw error;
      }
      try {
        const now = Date.now();
        // The ledger is read once, then only what was written since (by this run or another).
        if (!view) {
          const loaded = await loadLedger({ store, now, unresolved: o.resend });
          if (loaded.invalidLines > 0) o.onNote?.(`Note: ${loaded.invalidLines} line(s) of ${store.where} are not JSON (a write cut short by a crash) and were skipped`);
          view = loaded;
        } else view.cursor = (await refreshLedger({ store, ledger: view.ledger, cursor: view.cursor })).cursor;
        // Bad rows are told once the first lock is held, once per run.
        if (!toldSkipped) for (const p of o.skipped ?? []) o.onNote?.(`Skipped line ${p.line}: ${p.message}`);
        toldSkipped = true;
        _merge(result, await _runLocked(sharded, { ledger: view.ledger, now, store, lock, ...(shards > 1 ? { inShard: (c: CustomerRef) => shardOfCustomer(c) === shard, shardRows: shardRows(shard) } : {}) }));
      } finally {
        await lock.release();
      }
    }
    return busy;
  };
  const busy = await pass(Array.from({ length: shards }, (_, i) => (first + i) % shards), shards > 1 ? 0 : o.waitLockMs);
  // Shards other runners held: waited for, then whatever their holders left (a runner that died
  // mid-shard) is sent here; usually nothing is left.
  if (busy.length > 0) {
    o.onNote?.(`Shard(s) ${busy.map((k) => k + 1).join(", ")} of ${shards} held by other runners: waiting for them to finish what those runners leave`);
    await pass(busy, o.waitLockMs);
  }
  // --resend is the place to list every event of an unknown fate; other runs mention them.
  const open = result.reports.filter((r) => r.state === "open" && r.sent).length;
  if (open > 0) {
    o.onNote?.(`${open} event(s) have no final answer. Finish this run with: node scripts/2-emit-meter.mts --resend (it sends them again as recorded; the API's duplicate rule makes that safe and bills nothing twice).`);
  }
  const unknown = result.plan.unknown.length;
  if (!o.resend && unknown > 0) {
    o.onNote?.(`Note: ${unknown} event(s) of earlier runs were sent without an answer and can no longer be resent; they may have been billed: node scripts/2-emit-meter.mts --resend lists them`);
  }
  return { ...result, ...summarise(result.reports) };
}

/** Where a runner starts among the shards: spread by process, so runners started together take different ones first. */
function _firstShard(shards: number): number {
  return (process.pid * 7919 + Math.floor(Math.random() * shards)) % shards;
}

function _merge(into: UsageRunResult, part: UsageRunResult): void {
  into.plan.work.push(...part.plan.work);
  into.plan.settled.push(...part.plan.settled);
  into.plan.unknown.push(...part.plan.unknown);
  into.reports.push(...part.reports);
  into.customers += part.customers;
  if (part.audit) {
    const a = into.audit ??= { records: 0, writes: 0, syncMs: 0, bytes: 0 };
    a.records += part.audit.records;
    a.writes += part.audit.writes;
    a.syncMs += part.audit.syncMs;
    a.bytes += part.audit.bytes;
  }
  if (part.carried) (into.carried ??= []).push(...part.carried);
}

/** The work of one lock (the whole run, or one shard): plan, notes, send. */
async function _runLocked(o: UsageRunOptions, h: { ledger: Ledger; now: number; store: LedgerStore; lock: RunLock; inShard?: (c: CustomerRef) => boolean; shardRows?: (rows: UsageRows) => UsageRows }): Promise<UsageRunResult> {
  const { publisher } = o;
  const { ledger, now, inShard } = h;
  const planned = _plan(o, ledger, now, h.shardRows);
  const { run } = planned;
  let { plan, late, missed } = planned;
  if (inShard) {
    plan = { ...plan, work: plan.work.filter((w) => inShard(w.customer)), settled: plan.settled.filter((r) => inShard(r.customer)), unknown: plan.unknown.filter((r) => inShard(r.customer)) };
    missed = missed.filter((m) => inShard(m.customer));
    if (late) late = { ...late, carries: late.carries.filter((c) => inShard(c.customer)), carried: late.carried.filter((c) => inShard(c.customer)) };
  }
  // Carries durable before the hours they go to are sent (a rerun then carries to the same
  // hours); missed charges recorded as they are reported (later runs do not report them again).
  const notes = [...(late?.carries ?? []), ...missed];
  if (notes.length > 0) {
    const writer = await h.store.createWriter();
    try {
      await Promise.all(notes.map((c) => writer.append(c)));
    } finally {
      await writer.close();
    }
  }
  for (const c of late?.carried ?? []) o.onNote?.(`Carried late usage ${c.quantity} ${c.dimension} of ${c.customer.subscriptionId}/${c.customer.managedResourceGroup} from ${c.from} into ${c.to}`);
  const resends = plan.work.filter((w) => w.resend).length;
  if (resends > 0) o.onNote?.(`Sending again ${resends} event(s) of earlier runs whose outcome was never recorded`);
  const shape = planShape(plan);
  const { customers } = shape;
  const concurrency = o.concurrency ?? defaultConcurrency(shape);
  let sent: EventReport[] = [];
  let audit: AuditWriterStats | undefined;
  if (plan.work.length > 0) {
    const where = h.inShard ? ` (${_lockName(h.lock)})` : "";
    if (o.single) {
      const w = plan.work.find((i) => i.line === 0) ?? plan.work[0];
      o.onNote?.(`Sending ${w.event.quantity} ${w.event.dimension} for ${w.event.effectiveStartTime}`);
    } else o.onNote?.(`Sending ${plan.work.length} event(s) for ${customers} customer(s)${where}, ${concurrency} request(s) at a time`);
    const { runSubmission } = await import("./submission.mts");
    const app = o.as === "publisher-app" ? publisher.publisherApp?.() : undefined;
    if (o.as === "publisher-app" && !app) throw new UsageError("Cannot meter as the publisher app: this context has none");
    const central = app ? _centralToken(app) : undefined;
    sent = await runSubmission({
      work: plan.work,
      config: publisher.config,
      ledger: h.store,
      client: await publisher.meteringClient(),
      mode: o.single ? "single" : "batch",
      concurrency,
      ...(run.input ? { input: run.input } : {}),
      lock: { name: _lockName(h.lock), token: h.lock.info.token, lost: () => h.lock.lost() },
      getToken: central ? () => central() : (customer, ref) => publisher.session(ref, customer).getToken(),
      onProgress: (p) => o.onProgress?.(p, plan.work.length),
      // Each customer's credential (an MSAL application with its token cache) is let go once its
      // batches are done: what a run holds follows its request slots, not its customers.
      ...(central || !publisher.endSession ? {} : { onCustomerDone: (customer: CustomerConfig, ref: CustomerRef) => publisher.endSession!(ref, customer) }),
      onAuditStats: (stats) => void (audit = stats),
    });
    const lost = h.lock.lost();
    if (lost) o.onNote?.(`Stopped sending: ${lost.message}. The events not sent stay for the next run.`);
  }
  const reports = [...plan.settled, ...(o.resend ? plan.unknown : []), ...sent];
  return { plan, reports, ...summarise(reports), customers, ...(audit ? { audit } : {}), ...(late ? { carried: late.carried } : {}) };
}

const _lockName = (lock: RunLock) => lock.path.replace(/^.*[\\/]/, "").replace(/\.lock$/, "");

/** A run's input: its rows, the bad rows, and what identifies it (so a rerun can finish an unfinished run). */
export interface RunRows {
  rows: UsageRows;
  problems: RowProblem[];
  digest: string | undefined;
  /** How the input is named in messages. */
  source: string;
  /** From --file (rows are checked against config.json), not the arguments. */
  fromFile: boolean;
  /** With --aggregate: raw records read, distinct UTC hours, and the events they were summed into. */
  aggregated?: Aggregated["summary"];
  /** With --aggregate: the raw lines of each event (for carry records). */
  linesOf?: Aggregated["linesOf"];
}

/**
 * The one event of 2-emit-meter's arguments. Its digest is the SHA-256 of [subscription,
 * group (both lower-cased), hours-ago, dimension, quantity]: the same event run again resumes.
 */
export function oneEventRows(e: { subscriptionId: string; managedResourceGroup: string; hoursAgo: number; dimension: string; quantity: number; now: number }): RunRows {
  const rows = UsageRows.from([{
    line: 0, subscriptionId: e.subscriptionId, managedResourceGroup: e.managedResourceGroup, dimension: e.dimension, quantity: e.quantity,
    effectiveStartTime: effectiveStartTime({ hoursAgo: e.hoursAgo, now: e.now }), hoursAgo: e.hoursAgo,
  }]);
  const digest = inputDigest(JSON.stringify([e.subscriptionId.toLowerCase(), e.managedResourceGroup.toLowerCase(), e.hoursAgo, e.dimension, e.quantity]));
  return { rows, problems: [], digest, source: "the event", fromFile: false };
}

/**
 * The rows of --file (a path, or - for stdin); an input with no row at all is an InputError.
 * With `aggregate`, rows are raw records summed per customer, dimension and UTC hour as they
 * are read (lib/metering/aggregate.mts): the events are the sums, each at its hour's first line.
 */
export async function fileRows(file: string, options: Omit<Parameters<typeof readUsageInput>[1], "sink"> & { aggregate?: boolean }): Promise<RunRows> {
  const source = file === "-" ? "stdin" : file;
  const sums = options.aggregate ? new RowAggregator({ maxQuantity: options.maxQuantity }) : undefined;
  // Raw records past the window are late usage, reported by the run (late.mts), not bad input.
  const parsed = await readUsageInput(file, { ...options, sink: sums, ...(sums ? { acceptPast: true } : {}) });
  let { rows, problems } = parsed;
  let summed: Aggregated | undefined;
  if (sums) {
    summed = sums.finish();
    rows = summed.rows;
    if (summed.problems.length > 0) problems = [...problems, ...summed.problems].sort((a, b) => a.line - b.line);
  }
  if (rows.length === 0 && problems.length === 0) throw new InputError(`Cannot send ${source}: it holds no events`);
  return { rows, problems, digest: parsed.digest, source, fromFile: true, ...(summed ? { aggregated: summed.summary, linesOf: summed.linesOf } : {}) };
}

/**
 * The input checked against config.json before the dry run and the lock: one event of a
 * customer that is not connected is CustomerNotConnectedError (exit 2, with how to connect it);
 * a file's rows config cannot bill (not connected, an hour twice) join its format problems, in
 * line order. With problems and without `skipInvalid`: an InputError listing them, nothing sent.
 */
export function checkRunRows(input: RunRows, publisher: { config: MeteringConfig; customer(ref: CustomerRef): unknown }, o: { skipInvalid: boolean }): RunRows {
  let { rows, problems } = input;
  if (!input.fromFile && rows.length > 0) publisher.customer(rows.at(0));
  if (input.fromFile) {
    const checked = checkRows(rows, publisher.config);
    rows = checked.rows;
    problems = [...problems, ...checked.problems].sort((a, b) => a.line - b.line);
  }
  if (problems.length > 0 && !o.skipInvalid) throw problemsError(problems, input.source);
  return { ...input, rows, problems };
}

/** What a dry run of one event would send: the request, and the federation its token would come from. */
export function oneEventDryRun(plan: SubmissionPlan, publisher: {
  config: MeteringConfig;
  settings: { meteringApiBaseUrl: string };
  customer(ref: CustomerRef): CustomerConfig;
}): { wouldSend: boolean; settled?: EventReport; request: UsageRequestDescription; federation: Record<string, string> } {
  const work = plan.work.find((i) => i.line === 0);
  const settled = plan.settled.find((r) => r.line === 0);
  const one = (work ?? settled)!;
  const customer = publisher.customer(one.customer);
  const request = describeUsageRequest({ event: one.event, baseUrl: publisher.settings.meteringApiBaseUrl });
  const federation = { issuer: publisher.config.publisher.idp!.issuer, subject: customer.subject, audience: customer.audience, tenantId: customer.tenantId, clientId: customer.uamiClientId };
  return { wouldSend: work !== undefined, ...(settled ? { settled } : {}), request, federation };
}
