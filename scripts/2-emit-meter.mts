#!/usr/bin/env node
// Sends usage events to the Marketplace metering API as each customer's UAMI (workload
// identity federation, no secret anywhere): one event from the arguments, or a CSV/JSONL file.
import { createReadStream } from "node:fs";
import { once } from "node:events";
import { EXIT_FAILED, EXIT_OK, MAX_PROBLEMS_SHOWN, runCommand } from "../lib/cli/command.mts";
import { InputError, UsageError } from "../lib/core/errors.mts";
import { getCustomer, loadConfig, signingKeyOf, type CustomerConfig, type MeteringConfig } from "../lib/state/config.mts";
import { auditPathIn, configPathIn, resolveDataDir } from "../lib/state/paths.mts";
import { DEFAULT_MAX_QUANTITY, parseDimension, parseHoursAgo, parseMaxQuantity, parseQuantity, parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { describeUsageRequest } from "../lib/metering/api.mts";
import { statusMeaning } from "../lib/metering/status.mts";
import { effectiveStartTime, resourceOfKey } from "../lib/metering/time.mts";
import { checkRows, formatOfPath, inputDigest, readUsageFile, UsageRows, type ParsedUsageFile, type RowProblem } from "../lib/metering/usage-file.mts";
import { loadLedger, planSubmission, resolveRunInstant, summarise, type EventReport, type SubmissionPlan } from "../lib/metering/submission.mts";
import type { Ledger, RunInput } from "../lib/metering/ledger.mts";

const USAGE = `Usage: 2-emit-meter.mts <subscription> <managed-resource-group> <hours-ago> <dimension> <quantity> [options]
       2-emit-meter.mts --file <usage.csv|usage.jsonl|-> [options]
       2-emit-meter.mts --resend [options]

Sends usage events to the Marketplace metering API, signed in as each customer's UAMI
through workload identity federation. Exactly once: every event's intent is written to the
audit log (fsynced) before it is sent and its outcome after; an event whose outcome never
arrived is sent again on the next run (the API's duplicate rule makes that safe), and an
event the audit log shows as accepted is not sent again.

Arguments (one event):
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group
  hours-ago                0..23: the event covers the UTC hour that many hours back (0 = this hour)
  dimension                Partner Center dimension id
  quantity                 units above the plan's included quantity, a number > 0 with a
                           decimal dot, at most --max-quantity

Options:
  --file PATH         events from a file: CSV with a header row, or JSON Lines (.jsonl);
                      - reads stdin. UTF-8. Columns: subscription, managed-resource-group,
                      dimension, quantity, and hours-ago or effective-start-time (ISO 8601
                      with Z, within the last 24 hours). Every bad row is listed (line
                      number and problem) and nothing is sent, unless --skip-invalid
  --format csv|jsonl  format of --file when its name does not say (stdin: guessed)
  --max-quantity N    refuse a quantity above N, in the event or any row (default 1000000):
                      a unit mix-up (bytes for GB) is not billed
  --resend            only send again the events of earlier runs that have no outcome
  --concurrency N     customers in flight at once, 1..64 (default 8)
  --skip-invalid      send the valid rows of a file with bad rows (default: send nothing)
  --force             send even events the audit log shows as accepted (the API answers Duplicate)
  --wait-lock S       wait up to S seconds for another run on the same data directory (default 600)
  --dry-run           show what would be sent; sign nothing, send nothing, write nothing
  --json              print the outcome as JSON (one event) or a JSON report (file)
  -v, --verbose       show details on errors
  -h, --help          show this help

Environment:
  METERING_DATA_DIR         state directory (config.json, audit.jsonl); default ./metering-data,
                            or $HOME/clouddrive/metering-data in Cloud Shell
  METERING_API_BASE_URL     metering API; default https://marketplaceapi.microsoft.com
  METERING_HTTP_TRY_TIMEOUT_MS  one HTTP attempt's timeout before it is retried (default 30000)
  AZURE_AUTHORITY_HOST, AZURE_TOKEN_CREDENTIALS, METERING_DISABLE_INSTANCE_DISCOVERY,
  METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION (see docs/internals.md)

Transient failures (network errors, timeouts, 429 after Retry-After, 5xx) are retried with
backoff; within 15 minutes of 1-connect-customer, Entra's "no matching federated credential"
errors are too. Refusals (Expired, InvalidDimension, ResourceNotFound, …) are recorded, not retried.

Exit codes:
  0  every event accepted (or already accepted with the same quantity)
  1  any event not accepted: refused, unconfirmed, a duplicate whose accepted quantity
     differs, or rows skipped with --skip-invalid
  2  usage or input error, or customer not connected (nothing sent, nothing written)
`;

const OPTIONS = {
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
  file: { type: "string" },
  format: { type: "string" },
  resend: { type: "boolean" },
  concurrency: { type: "string" },
  "skip-invalid": { type: "boolean" },
  force: { type: "boolean" },
  "wait-lock": { type: "string" },
  "max-quantity": { type: "string" },
} as const;
const EVENT_POSITIONALS = ["subscription", "managed-resource-group", "hours-ago", "dimension", "quantity"];
// Federated credentials take minutes to reach Entra; retry the propagation errors only this
// long after 1-connect-customer, so a real misconfiguration still fails fast.
const FRESH_CONNECTION_MS = 15 * 60_000;

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`${text}\n`);

function intOption(value: string | boolean | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`Cannot use --${name} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
  return n;
}

/** Reads --file (a path, or - for stdin) as a stream, line by line, into checked rows and the input's digest. */
async function readInput(file: string, options: { format: string | undefined; now: number; maxQuantity: number }): Promise<ParsedUsageFile> {
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
  if (file === "-") chunks = process.stdin;
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
    return await readUsageFile(chunks, { format: chosen, now: options.now, maxQuantity: options.maxQuantity });
  } catch (cause) {
    // A read that fails half-way (EISDIR, EIO): nothing was parsed that could be sent.
    if ((cause as NodeJS.ErrnoException)?.code) throw cannotRead(cause);
    throw cause;
  }
}

function problemsError(problems: RowProblem[], source: string): InputError {
  return new InputError(
    `Cannot send ${source}: ${problems.length} bad row(s); nothing was sent (fix them, or pass --skip-invalid to send the rest)`,
    { problems },
  );
}

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS,
    positionals: (values) => (values.file !== undefined || values.resend ? [] : EVENT_POSITIONALS),
    run: async ({ values, positionals }) => {
      const json = values.json === true;
      const concurrency = intOption(values.concurrency, "concurrency", 1, 64, 8);
      const waitLockS = intOption(values["wait-lock"], "wait-lock", 0, 86_400, 600);
      if (values.file !== undefined && values.resend) throw new UsageError("Cannot use --file with --resend: a run with a file resends unconfirmed events anyway");
      const single = values.file === undefined && !values.resend;
      const now = Date.now();

      // 1. Input, checked in full before anything is signed, sent or written.
      const maxQuantity = values["max-quantity"] === undefined ? DEFAULT_MAX_QUANTITY : parseMaxQuantity(String(values["max-quantity"]));
      let rows = new UsageRows();
      let problems: RowProblem[] = [];
      let source = "the event";
      // The file as read: its rows, problems and digest (the SHA-256 of its bytes).
      let input: ParsedUsageFile | undefined;
      // What identifies this input, so that a rerun of it can finish an unfinished run.
      let digest: string | undefined;
      if (single) {
        const subscriptionId = parseSubscriptionId(positionals[0]);
        const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
        const hoursAgo = parseHoursAgo(positionals[2]);
        const dimension = parseDimension(positionals[3]);
        const quantity = parseQuantity(positionals[4], { maxQuantity });
        rows = UsageRows.from([{ line: 0, subscriptionId, managedResourceGroup, dimension, quantity, effectiveStartTime: effectiveStartTime({ hoursAgo, now }), hoursAgo }]);
        digest = inputDigest(JSON.stringify([subscriptionId.toLowerCase(), managedResourceGroup.toLowerCase(), hoursAgo, dimension, quantity]));
      } else if (values.file !== undefined) {
        const file = String(values.file);
        source = file === "-" ? "stdin" : file;
        input = await readInput(file, { format: values.format as string | undefined, now, maxQuantity });
        ({ rows, problems, digest } = input);
        if (rows.length === 0 && problems.length === 0) throw new InputError(`Cannot send ${source}: it holds no events`);
      }

      const dataDir = resolveDataDir();
      const configPath = configPathIn(dataDir);
      const config = await loadConfig({ path: configPath, stage: "idp" });
      // One event for a customer that is not connected: say how to connect it (exit 2).
      if (single) getCustomer(config, { ...rows.at(0), path: configPath });
      // Rows config.json cannot bill (customer not connected, an hour twice), in the same pass
      // as the format problems: the whole list at once, before the dry run and the lock.
      if (input) {
        const checked = checkRows(rows, config);
        rows = checked.rows;
        problems = [...problems, ...checked.problems].sort((a, b) => a.line - b.line);
      }
      if (problems.length > 0 && !values["skip-invalid"]) throw problemsError(problems, source);
      const auditPath = auditPathIn(dataDir);

      if (values["dry-run"]) {
        const { ledger } = await loadLedger({ auditPath, now, unresolved: values.resend === true });
        const run = resumeIfUnfinished({ rows, ledger, digest, now, config, source });
        const plan = planSubmission({ rows: run.rows, config, ledger, force: values.force === true, now });
        return dryRun(plan, { config, json, single, problems });
      }

      // 2. One run at a time per data directory: two runs could otherwise both send an open event.
      const { acquireRunLock } = await import("../lib/core/lock.mts");
      const lock = await acquireRunLock({
        dir: dataDir,
        waitMs: waitLockS * 1000,
        onWait: (holder) => progress(`Waiting for another run to finish (${holder ? `process ${holder.pid} on ${holder.host}` : "lock held"}; up to ${waitLockS} s)`),
      });
      try {
        const { ledger, invalidLines } = await loadLedger({ auditPath, now: Date.now(), unresolved: values.resend === true });
        if (invalidLines > 0) progress(`Note: ${invalidLines} line(s) of ${auditPath} are not JSON (a write cut short by a crash) and were skipped`);
        const run = resumeIfUnfinished({ rows, ledger, digest, now, config, source });
        const plan = planSubmission({ rows: run.rows, config, ledger, force: values.force === true, now: Date.now() });
        for (const p of problems) progress(`Skipped line ${p.line}: ${p.message}`);
        const resends = plan.work.filter((w) => w.resend).length;
        if (resends > 0) progress(`Sending again ${resends} event(s) of earlier runs whose outcome was never recorded`);

        const sent = plan.work.length > 0 ? await send(plan, { config, auditPath, concurrency, single, input: run.input }) : [];
        // --resend is the place to list every event of an unknown fate; other runs mention them.
        const reports = [...plan.settled, ...(values.resend ? plan.unknown : []), ...sent];
        const { counts, ok } = summarise(reports);
        adviseUnfinished(reports);
        if (!values.resend && plan.unknown.length > 0) {
          progress(`Note: ${plan.unknown.length} event(s) of earlier runs were sent without an answer and can no longer be resent; they may have been billed: node scripts/2-emit-meter.mts --resend lists them`);
        }
        if (single && !values.resend) {
          const mine = reports.find((r) => r.line === 0) ?? reports[0];
          for (const r of reports) if (r !== mine) progress(`Earlier event ${r.event.quantity} ${r.event.dimension} for ${r.event.effectiveStartTime}: ${r.status}${r.message ? ` (${r.message})` : ""}`);
          return reportOne(mine, { json }) === EXIT_OK && ok ? EXIT_OK : EXIT_FAILED;
        }
        reportMany(reports, { counts, json, skipped: problems, customers: new Set(plan.work.map((w) => resourceOfKey(w.key))).size });
        return ok && problems.length === 0 ? EXIT_OK : EXIT_FAILED;
      } finally {
        await lock.release();
      }
    },
  });
}

async function send(plan: SubmissionPlan, options: { config: MeteringConfig; auditPath: string; concurrency: number; single: boolean; input?: RunInput }): Promise<EventReport[]> {
  const { createIsvCredential } = await import("../lib/identity/isv-credential.mts");
  const { createKeyVaultSigner } = await import("../lib/identity/signer.mts");
  const { createFederatedTokenSource } = await import("../lib/identity/federation.mts");
  const { sdkClientOptions } = await import("../lib/core/http.mts");
  const { createMeteringClient } = await import("../lib/metering/api.mts");
  const { createProgress } = await import("../lib/cli/progress.mts");
  const { runSubmission } = await import("../lib/metering/submission.mts");

  const idp = options.config.publisher.idp!;
  const credential = await createIsvCredential();
  const signer = await createKeyVaultSigner({ ...signingKeyOf(idp), credential });
  const fresh = new Set<string>();
  const tokens = createFederatedTokenSource({
    issuer: idp.issuer,
    signer,
    credentialOptions: (identity) => sdkClientOptions({
      propagation: fresh.has(identity.clientId)
        ? { onRetry: ({ aadsts, retryAfterInMs }) => progress(`AADSTS${aadsts} for UAMI ${identity.clientId}: the new federated credential may not have reached Entra yet; retrying in ${(retryAfterInMs / 1000).toFixed(1)} s`) }
        : undefined,
    }),
  });
  const client = await createMeteringClient();
  const total = plan.work.length;
  const bar = createProgress({ stream: process.stderr, total, label: "events", enabled: !options.single && total > 25 });
  if (options.single) {
    const w = plan.work.find((i) => i.line === 0) ?? plan.work[0];
    progress(`Sending ${w.event.quantity} ${w.event.dimension} for ${w.event.effectiveStartTime}`);
  } else {
    progress(`Sending ${total} event(s) for ${new Set(plan.work.map((w) => resourceOfKey(w.key))).size} customer(s), ${options.concurrency} at a time`);
  }
  const reports = await runSubmission({
    work: plan.work,
    config: options.config,
    auditPath: options.auditPath,
    client,
    mode: options.single ? "single" : "batch",
    concurrency: options.concurrency,
    ...(options.input ? { input: options.input } : {}),
    getToken: (customer: CustomerConfig) => {
      if (Date.now() - Date.parse(String(customer.connectedAt ?? "")) < FRESH_CONNECTION_MS) fresh.add(customer.uamiClientId);
      return tokens.getToken({ tenantId: customer.tenantId, clientId: customer.uamiClientId, subject: customer.subject, audience: customer.audience });
    },
    onProgress: (p) => bar.update(p.eventsDone, `events, ${p.customersDone}/${p.customersTotal} customers`),
  });
  bar.done();
  return reports;
}

/**
 * Rows resolved against the instant of an unfinished earlier run of the same input, when
 * there is one (so the rerun finishes it and bills no row twice); otherwise as they are.
 */
function resumeIfUnfinished(o: { rows: UsageRows; ledger: Ledger; digest: string | undefined; now: number; config: MeteringConfig; source: string }): { rows: UsageRows; input?: RunInput } {
  if (o.digest === undefined) return { rows: o.rows };
  const { input, resumed } = resolveRunInstant({ ledger: o.ledger, digest: o.digest, now: o.now });
  if (!resumed) return { rows: o.rows, input };
  let relative = false;
  for (let i = 0; i < o.rows.length && !relative; i++) relative = o.rows.fieldAt(i, "hoursAgo") !== undefined;
  if (!relative) return { rows: o.rows, input };
  progress(`This input was sent by a run at ${input.resolvedAt} that did not finish: finishing that run (hours-ago counted from ${input.resolvedAt}, so no row is billed twice). Run it again afterwards to bill the current hours.`);
  const rows = o.rows.resolvedAgainst(Date.parse(input.resolvedAt));
  // Moved hours-ago rows may now name the hour of a row with an absolute time.
  const checked = checkRows(rows, o.config);
  if (checked.problems.length > 0) throw problemsError(checked.problems, o.source);
  return { rows: checked.rows, input };
}

/** After a run that left events without a final answer: the command that finishes it. */
function adviseUnfinished(reports: EventReport[]) {
  const open = reports.filter((r) => r.state === "open" && r.sent).length;
  if (open > 0) {
    progress(`${open} event(s) have no final answer. Finish this run with: node scripts/2-emit-meter.mts --resend (it sends them again as recorded; the API's duplicate rule makes that safe and bills nothing twice).`);
  }
}

function dryRun(plan: SubmissionPlan, o: { config: MeteringConfig; json: boolean; single: boolean; problems: RowProblem[] }): number {
  const { problems } = o;
  if (o.single) {
    const w = plan.work.find((i) => i.line === 0);
    const settled = plan.settled.find((r) => r.line === 0);
    const customer = getCustomer(o.config, { ...(w ?? settled)!.customer, path: "config.json" });
    const request = describeUsageRequest({ event: (w ?? settled)!.event });
    const federation = { issuer: o.config.publisher.idp!.issuer, subject: customer.subject, audience: customer.audience, tenantId: customer.tenantId, clientId: customer.uamiClientId };
    if (o.json) out(JSON.stringify({ dryRun: true, wouldSend: w !== undefined, ...(settled ? { settled } : {}), request, federation }, null, 2));
    else {
      if (settled) progress(`Would not send: ${settled.status} (${settled.message})`);
      out(`${request.method} ${request.url}`);
      for (const [k, v] of Object.entries(request.headers)) out(`${k}: ${v}`);
      out(`authorization: Bearer <token of UAMI ${customer.uamiClientId} in tenant ${customer.tenantId}; not requested in a dry run>`);
      out("");
      out(JSON.stringify(request.body, null, 2));
    }
    return EXIT_OK;
  }
  // Events per customer, counted without building a string per event (a million of them).
  const perSubscription = new Map<string, Map<string, number>>();
  for (const { customer } of plan.work) {
    let groups = perSubscription.get(customer.subscriptionId);
    if (!groups) perSubscription.set(customer.subscriptionId, groups = new Map());
    groups.set(customer.managedResourceGroup, (groups.get(customer.managedResourceGroup) ?? 0) + 1);
  }
  const perCustomer = [...perSubscription.values()].flatMap((groups) => [...groups.values()]);
  const calls = perCustomer.reduce((n, c) => n + Math.ceil(c / 25), 0);
  if (o.json) {
    out(JSON.stringify({ dryRun: true, wouldSend: plan.work, settled: plan.settled, unknown: plan.unknown, skipped: problems, customers: perCustomer.length, batchCalls: calls }, null, 2));
  } else {
    out(`Would send ${plan.work.length} event(s) (${plan.work.filter((w) => w.resend).length} resent) for ${perCustomer.length} customer(s) in ${calls} batch call(s)`);
    for (const r of [...plan.settled, ...plan.unknown]) out(`Would not send ${r.line !== undefined ? `line ${r.line}` : `an earlier run's ${r.event.quantity} ${r.event.dimension} for ${r.event.effectiveStartTime}`}: ${r.status}: ${r.message}`);
    for (const p of problems) out(`Would skip line ${p.line}: ${p.message}`);
  }
  return EXIT_OK;
}

/** Prints one event's outcome the way a person reads it (its status's line). Returns its exit code. */
function reportOne(r: EventReport, options: { json: boolean }): number {
  if (options.json) out(JSON.stringify(r, null, 2));
  // A Duplicate, or a Conflict the API answered: the event it accepted first.
  if (!options.json && r.original) {
    out("Duplicate: an event for this resource, dimension and hour was accepted before:");
    out(JSON.stringify(r.original, null, 2));
  }
  const meaning = statusMeaning(r.status);
  if (meaning.lineIs === "note") progress(meaning.line(r));
  else if (!options.json) out(meaning.line(r));
  return r.ok ? EXIT_OK : EXIT_FAILED;
}

/** The end of a file run: a table per status, failures listed, or the JSON report. */
function reportMany(reports: EventReport[], o: { counts: Record<string, number>; json: boolean; skipped: RowProblem[]; customers: number }) {
  if (o.json) {
    out(JSON.stringify({ ok: reports.every((r) => r.ok) && o.skipped.length === 0, counts: o.counts, skipped: o.skipped, events: reports }, null, 2));
    return;
  }
  const failures = reports.filter((r) => !r.ok);
  for (const r of failures.slice(0, MAX_PROBLEMS_SHOWN)) {
    const where = r.line !== undefined ? `line ${r.line}` : "earlier run";
    progress(`${r.status}: ${where}, ${r.customer.subscriptionId}/${r.customer.managedResourceGroup} ${r.event.quantity} ${r.event.dimension} ${r.event.effectiveStartTime}${r.message ? `: ${r.message}` : ""}`);
  }
  if (failures.length > MAX_PROBLEMS_SHOWN) progress(`… and ${failures.length - MAX_PROBLEMS_SHOWN} more not accepted (--json lists them all)`);
  const rows = Object.entries(o.counts).sort((a, b) => b[1] - a[1]);
  if (o.skipped.length > 0) rows.push(["Invalid (skipped)", o.skipped.length]);
  const width = Math.max(6, ...rows.map(([s]) => s.length));
  out(`${"status".padEnd(width)}  events`);
  for (const [status, n] of rows) out(`${status.padEnd(width)}  ${String(n).padStart(6)}`);
  const okCount = reports.filter((r) => r.ok).length;
  out(`${okCount} ok, ${reports.length - okCount + o.skipped.length} not accepted`);
}

process.exitCode = await main(process.argv.slice(2));
