#!/usr/bin/env node
// Sends usage events to the Marketplace metering API as each customer's UAMI (workload
// identity federation, no secret anywhere): one event from the arguments, or a CSV/JSONL file.
import type { RowProblem } from "../lib/metering/usage-file.mts";
import type { EventReport, SubmissionPlan } from "../lib/metering/submission.mts";
import type { Publisher } from "../lib/publisher/context.mts";
import type { AuditWriterStats } from "../lib/audit/log.mts";
import type { Attention } from "../lib/metering/attention.mts";
import type { RunRows, UsageRunResult } from "../lib/metering/run.mts";
import type { LatePolicy } from "../lib/metering/late.mts";
import type { BlobFileOutcome } from "../lib/publisher/usage-blobs.mts";
import { hostname } from "node:os";
import { enableCompileCache } from "../lib/core/compile-cache.mts";

// First, so that every module after it (this script's own lib modules, then the publisher
// context and the Azure SDKs) loads from Node's compile cache; hence the imports below are
// dynamic: a static import would be compiled before this line runs.
enableCompileCache();
const [
  { EXIT_FAILED, EXIT_OK, MAX_PROBLEMS_SHOWN, runCommand },
  { UsageError },
  { DEFAULT_MAX_QUANTITY, parseDimension, parseDurationOption, parseIntOption, parseHoursAgo, parseMaxQuantity, parseQuantity, parseResourceGroupName, parseSubscriptionId },
  { statusMeaning },
  { UsageRows },
  { checkRunRows, fileRows, MAX_CONCURRENCY, MAX_SHARDS, oneEventDryRun, oneEventRows, planShape, planUsageRun, runUsage },
  { jsonPieces, lineWriters, renderTable },
  { attentionOfRun, DEFAULT_WARN_BEFORE_MS, notificationBody },
  { parseWebhookUrl, postWebhook },
  { LATE_POLICIES },
  { readMeters },
] = await Promise.all([
  import("../lib/cli/command.mts"),
  import("../lib/core/errors.mts"),
  import("../lib/core/validate.mts"),
  import("../lib/metering/status.mts"),
  import("../lib/metering/usage-file.mts"),
  import("../lib/metering/run.mts"),
  import("../lib/cli/output.mts"),
  import("../lib/metering/attention.mts"),
  import("../lib/core/webhook.mts"),
  import("../lib/metering/late.mts"),
  import("../lib/metering/meters.mts"),
]);

const USAGE = `Usage: 2-emit-meter.mts <subscription> <managed-resource-group> <hours-ago> <dimension> <quantity> [options]
       2-emit-meter.mts --file <usage.csv|usage.jsonl|-> [options]
       2-emit-meter.mts --meters [--file <usage>] [options]
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
  --aggregate         rows of --file are raw usage records, many per hour, at any instant
                      of the window (effective-start-time) or hours-ago: they are summed per
                      customer, dimension and UTC hour (exactly, to 9 decimal places) and
                      each sum is one event. Records past the window, or for an hour another
                      input billed already, are late (see --late)
  --late reject|carry with --aggregate: late records are reported and not billed (reject, the
                      default; exit 1), or added to the earliest later hour of the same customer
                      and dimension that has no event yet (carry; recorded in the audit log, so
                      a rerun carries them to the same hour). Past the window: never billable
  --max-quantity N    refuse a quantity above N, in the event or any row (default 1000000):
                      a unit mix-up (bytes for GB) is not billed
  --resend            only send again the events of earlier runs that have no outcome
  --concurrency N     requests in flight at once, 1..64 (default: one per batch call, at
                      most 64: each waits on the network, not the CPU)
  --as uami|publisher-app
                      who signs in: each customer's UAMI, one token per customer in its
                      tenant (default), or the publisher app of 0-publisher-app, one token
                      in the ISV tenant for every customer (central metering); the default
                      can be set as publisher.meterAs in config.json
  --skip-invalid      send the valid rows of a file with bad rows (default: send nothing)
  --force             send even events the audit log shows as accepted (the API answers Duplicate)
  --from blob:C[/P]   bill the new usage files (.csv, .jsonl) of blob container C under prefix
                      P (in the ledger's storage account; blob:<blob endpoint URL>/C/P names
                      another), each once: its name and digest are recorded in the ledger, a
                      file seen again is skipped, one changed under the same name is refused
                      (exit 1). Rows are checked as --file's; with --aggregate, --late, --shards
  --wait-lock S       wait up to S seconds for another run on the same ledger (default 600)
  --shards N          divide the customers into N shards (1..1024), each sent under its own
                      lock, a lease in a blob ledger: runners started together over the same
                      input and ledger take free shards in turn and send every event once
                      (default: config.json publisher.ledger.shards, else 1)
  --meters            also bill config.json's recurring charges (meters) that are due: every
                      hour of the window with none yet (catching up missed runs), daily and
                      monthly ones at their first hour; charges whose hour left the window
                      unbilled are reported once as Missed. Alone, or with --file
  --notify URL        when the run leaves something for a person (events refused, of unknown
                      fate, or open with their hour leaving the API's window within
                      --warn-before), POST a JSON summary to this webhook (a Teams or Slack
                      incoming webhook, a Logic App; default: config.json notify.url); a
                      failed notification is exit 1, and never undoes billing. The body is
                      in the README ("Raising the alarm")
  --warn-before DUR   how close to leaving the 24-hour window an open event counts as needing
                      a person: 3h (default), 90m, 1h30m
  --dry-run           show what would be sent; sign nothing, send nothing, write nothing
  --json              print the outcome as JSON (one event) or a JSON report (file)
  -v, --verbose       show details on errors
  -h, --help          show this help

Environment:
  METERING_DATA_DIR         state directory (config.json, audit.jsonl); default ./metering-data,
                            or $HOME/clouddrive/metering-data in Cloud Shell
  METERING_API_BASE_URL     metering API; default https://marketplaceapi.microsoft.com
  METERING_HTTP_TRY_TIMEOUT_MS  one HTTP attempt's timeout before it is retried (default 30000)
  METERING_LEDGER           file, or blob:<account or blob endpoint URL>/<container>[/<prefix>]:
                            where the audit log lives (default: config.json publisher.ledger)
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
  aggregate: { type: "boolean" },
  meters: { type: "boolean" },
  late: { type: "string" },
  resend: { type: "boolean" },
  concurrency: { type: "string" },
  "skip-invalid": { type: "boolean" },
  force: { type: "boolean" },
  "wait-lock": { type: "string" },
  shards: { type: "string" },
  from: { type: "string" },
  "max-quantity": { type: "string" },
  notify: { type: "string" },
  "warn-before": { type: "string" },
  as: { type: "string" },
} as const;
const EVENT_POSITIONALS = ["subscription", "managed-resource-group", "hours-ago", "dimension", "quantity"];

const { out, outAll, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS,
    positionals: (values) => (values.file !== undefined || values.from !== undefined || values.resend || values.meters ? [] : EVENT_POSITIONALS),
    run: async ({ values, positionals }) => {
      const json = values.json === true;
      const concurrency = values.concurrency === undefined ? undefined : parseIntOption(values.concurrency, { name: "concurrency", min: 1, max: MAX_CONCURRENCY });
      const waitLockS = parseIntOption(values["wait-lock"], { name: "wait-lock", min: 0, max: 86_400, fallback: 600 });
      const shardsOption = values.shards === undefined ? undefined : parseIntOption(values.shards, { name: "shards", min: 1, max: MAX_SHARDS });
      if (values.file !== undefined && values.resend) throw new UsageError("Cannot use --file with --resend: a run with a file resends unconfirmed events anyway");
      if (values.from !== undefined) {
        const other = ["file", "resend", "meters", "dry-run"].find((k) => values[k] !== undefined && values[k] !== false);
        if (other) throw new UsageError(`Cannot use --from with --${other}: --from bills the new files of a blob container, each once`);
      }
      if (values.aggregate && values.file === undefined && values.from === undefined) throw new UsageError("Cannot use --aggregate without --file or --from: it sums a file's raw records into hourly events");
      if (values.late !== undefined && !values.aggregate) throw new UsageError("Cannot use --late without --aggregate: only raw records can be late for an hour billed already");
      if (values.late !== undefined && !LATE_POLICIES.includes(values.late as LatePolicy)) throw new UsageError(`Cannot use --late ${JSON.stringify(values.late)}: expected reject or carry`);
      if (values.meters && values.resend) throw new UsageError("Cannot use --meters with --resend: a run with --meters resends unconfirmed events anyway");
      const single = values.file === undefined && values.from === undefined && !values.resend && !values.meters;
      if (shardsOption !== undefined && single) throw new UsageError("Cannot use --shards with one event: shards divide the customers of a --file, --resend or --meters run");
      const notifyUrl = values.notify === undefined ? undefined : parseWebhookUrl(String(values.notify));
      const warnBeforeMs = parseDurationOption(values["warn-before"], { name: "warn-before", maxMs: 24 * 3_600_000, fallbackMs: DEFAULT_WARN_BEFORE_MS });
      const now = Date.now();

      // 1. Input, checked in full before anything is signed, sent or written.
      const maxQuantity = values["max-quantity"] === undefined ? DEFAULT_MAX_QUANTITY : parseMaxQuantity(String(values["max-quantity"]));
      const read = single
        ? oneEventRows({
          subscriptionId: parseSubscriptionId(positionals[0]), managedResourceGroup: parseResourceGroupName(positionals[1], "managed resource group"),
          hoursAgo: parseHoursAgo(positionals[2]), dimension: parseDimension(positionals[3]), quantity: parseQuantity(positionals[4], { maxQuantity }), now,
        })
        : values.file !== undefined
        ? await fileRows(String(values.file), { format: values.format as string | undefined, now, maxQuantity, stdin: process.stdin, aggregate: values.aggregate === true })
        : { rows: new UsageRows(), problems: [], digest: undefined, source: values.meters ? "the meters" : values.from !== undefined ? String(values.from) : "the audit log", fromFile: false };

      const { usePublisher } = await import("../lib/publisher/context.mts");
      const onPropagationRetry = ({ clientId, aadsts, retryAfterInMs }: { clientId: string; aadsts: number; retryAfterInMs: number }) =>
        progress(`AADSTS${aadsts} for ${values.as === "publisher-app" ? "the publisher app" : "UAMI"} ${clientId}: the new federated credential may not have reached Entra yet; retrying in ${(retryAfterInMs / 1000).toFixed(1)} s`);
      return await usePublisher({ onPropagationRetry }, async (publisher) => {
        const { rows, problems, digest, source } = checkRunRows(read, publisher, { skipInvalid: values["skip-invalid"] === true });
        const webhook = notifyUrl ?? configuredWebhook(publisher.config);
        const { aggregated } = read;
        if (aggregated && !json) progress(`Summed ${aggregated.records} raw record(s) into ${aggregated.events} hourly event(s) over ${aggregated.hours} UTC hour(s)`);
        const late = read.aggregated ? { policy: (values.late ?? "reject") as LatePolicy, linesOf: read.linesOf } : undefined;
        const meters = values.meters ? readMeters(publisher.config) : undefined;
        if (meters?.length === 0) throw new UsageError("Cannot use --meters: config.json has no meters (see the README, \"Recurring charges\")");
        // Who signs in: --as, else publisher.meterAs in config, else each customer's UAMI.
        const meterAs = String(values.as ?? publisher.config.publisher.meterAs ?? "uami");
        if (meterAs !== "uami" && meterAs !== "publisher-app") throw new UsageError(`Cannot meter --as ${JSON.stringify(meterAs)}: expected uami or publisher-app`);
        // Without publisher.app in config: exit 2 before anything is signed or sent.
        if (meterAs === "publisher-app") publisher.publisherApp();
        const run = {
          publisher, rows, digest, source, single, late, ...(meters ? { meters } : {}),
          resend: values.resend === true, force: values.force === true, onNote: progress, as: meterAs as "uami" | "publisher-app",
        };
        if (values["dry-run"]) return dryRun(await planUsageRun(run), { publisher, json, single, problems });
        const shards = shardsOption ?? (publisher.ledgerSpec.kind === "blob" ? publisher.ledgerSpec.shards : undefined) ?? 1;
        if (values.from !== undefined) {
          const { parseBlobSource, runUsageFromBlobs } = await import("../lib/publisher/usage-blobs.mts");
          const source = parseBlobSource(String(values.from), publisher.ledgerSpec);
          const { files, result, skipped } = await runUsageFromBlobs({
            ...run, source, concurrency, waitLockMs: waitLockS * 1000, shards,
            read: { format: values.format as string | undefined, now, maxQuantity, aggregate: values.aggregate === true, skipInvalid: values["skip-invalid"] === true },
            onFile: (f) => progress(`${f.status === "billed" ? "Billed" : f.status === "skipped" ? "Skipped" : "Refused"} ${f.name}${f.rows !== undefined ? ` (${f.rows} event(s))` : ""}${f.message ? `: ${f.message}` : ""}`),
          });
          if (files.length === 0) progress(`No usage files (.csv, .jsonl) under ${String(values.from)}`);
          const attention = attentionOfRun({ reports: result.reports, skipped, now: Date.now(), warnBeforeMs });
          const notified = await raiseAlarm(attention, { url: webhook, publisher });
          await reportMany(result.reports, { counts: result.counts, json, skipped, customers: result.customers, attention, files });
          return result.ok && skipped.length === 0 && notified ? EXIT_OK : EXIT_FAILED;
        }

        // 2. Send, under the data directory's run lock.
        const { createProgress } = await import("../lib/cli/progress.mts");
        let bar: ReturnType<typeof createProgress> | undefined;
        const result = await runUsage({
          ...run, concurrency, waitLockMs: waitLockS * 1000, skipped: problems,
          shards,
          onProgress: (p, total) => {
            bar ??= createProgress({ stream: process.stderr, total, label: "events", enabled: !single && total > 25 });
            bar.update(p.eventsDone, `events, ${p.customersDone}/${p.customersTotal} customers`);
          },
        });
        bar?.done();
        const { reports, counts, ok } = result;
        const attention = attentionOfRun({ reports, skipped: problems, now: Date.now(), warnBeforeMs });
        const notified = await raiseAlarm(attention, { url: webhook, publisher });
        if (single && !values.resend) {
          const mine = reports.find((r) => r.line === 0) ?? reports[0];
          for (const r of reports) if (r !== mine) progress(`Earlier event ${r.event.quantity} ${r.event.dimension} for ${r.event.effectiveStartTime}: ${r.status}${r.message ? ` (${r.message})` : ""}`);
          return reportOne(mine, { json }) === EXIT_OK && ok && notified ? EXIT_OK : EXIT_FAILED;
        }
        await reportMany(reports, { counts, json, skipped: problems, customers: result.customers, audit: result.audit, aggregated, attention, carried: result.carried });
        return ok && problems.length === 0 && notified ? EXIT_OK : EXIT_FAILED;
      });
    },
  });
}

async function dryRun(plan: SubmissionPlan, o: { publisher: Publisher; json: boolean; single: boolean; problems: RowProblem[] }): Promise<number> {
  const { problems, publisher } = o;
  if (o.single) {
    const one = oneEventDryRun(plan, publisher);
    const { request, federation, settled } = one;
    if (o.json) out(JSON.stringify({ dryRun: true, ...one }, null, 2));
    else {
      if (settled) progress(`Would not send: ${settled.status} (${settled.message})`);
      out(`${request.method} ${request.url}`);
      for (const [k, v] of Object.entries(request.headers)) out(`${k}: ${v}`);
      out(`authorization: Bearer <token of UAMI ${federation.clientId} in tenant ${federation.tenantId}; not requested in a dry run>`);
      out("");
      out(JSON.stringify(request.body, null, 2));
    }
    return EXIT_OK;
  }
  const { customers, batchCalls } = planShape(plan);
  if (o.json) {
    const dry = { dryRun: true, wouldSend: plan.work, settled: plan.settled, unknown: plan.unknown, skipped: problems, customers, batchCalls };
    await outAll(jsonPieces(dry, { stream: ["wouldSend", "settled", "unknown", "skipped"] }));
  } else {
    out(`Would send ${plan.work.length} event(s) (${plan.work.filter((w) => w.resend).length} resent) for ${customers} customer(s) in ${batchCalls} batch call(s)`);
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

/**
 * Says on stderr what the run leaves for a person, and posts it to the webhook when there is
 * anything. Returns false when the notification failed (said in one line; billing stands).
 */
/** config.json `notify.url`: the webhook when --notify is not given; a bad one is a usage error (exit 2) before anything is sent. */
function configuredWebhook(config: Publisher["config"]): URL | undefined {
  const url = (config.notify as { url?: unknown } | undefined)?.url;
  return url === undefined ? undefined : parseWebhookUrl(String(url), "config.json notify.url");
}

async function raiseAlarm(attention: Attention, o: { url: URL | undefined; publisher: Publisher }): Promise<boolean> {
  if (!attention.needsPerson) return true;
  const body = notificationBody(attention, { time: new Date(), host: hostname(), dataDir: o.publisher.paths.dataDir });
  progress(String(body.text));
  if (!o.url) return true;
  try {
    await postWebhook(o.url, body, { settings: o.publisher.settings });
    progress(`Notified the webhook at ${o.url.host}`);
    return true;
  } catch (err) {
    progress(`Cannot notify: ${(err as Error).message}; billing is not affected`);
    return false;
  }
}

/** The end of a file run: a table per status, failures listed, or the JSON report. */
async function reportMany(reports: EventReport[], o: { counts: Record<string, number>; json: boolean; skipped: RowProblem[]; customers: number; audit?: AuditWriterStats; aggregated?: RunRows["aggregated"]; attention: Attention; carried?: UsageRunResult["carried"]; files?: BlobFileOutcome[] }) {
  if (o.json) {
    // `audit`: the usage records this run appended, in how many writes (one fsync each), and the fsync time.
    // Written a group of events at a time: never the whole report as one string.
    const report = {
      ok: reports.every((r) => r.ok) && o.skipped.length === 0, counts: o.counts, skipped: o.skipped,
      ...(o.aggregated ? { aggregated: o.aggregated } : {}), ...(o.carried ? { carried: o.carried } : {}), ...(o.files ? { files: o.files } : {}), attention: o.attention.counts, ...(o.audit ? { audit: o.audit } : {}), events: reports,
    };
    await outAll(jsonPieces(report, { stream: ["events", "skipped"] }));
    return;
  }
  const failures = reports.filter((r) => !r.ok);
  for (const r of failures.slice(0, MAX_PROBLEMS_SHOWN)) {
    progress(`${r.status}: ${r.line !== undefined ? `line ${r.line}` : "earlier run"}, ${r.customer.subscriptionId}/${r.customer.managedResourceGroup} ${r.event.quantity} ${r.event.dimension} ${r.event.effectiveStartTime}${r.message ? `: ${r.message}` : ""}`);
  }
  if (failures.length > MAX_PROBLEMS_SHOWN) progress(`… and ${failures.length - MAX_PROBLEMS_SHOWN} more not accepted (--json lists them all)`);
  const rows = Object.entries(o.counts).sort((a, b) => b[1] - a[1]).map(([status, n]) => [status, String(n)]);
  if (o.skipped.length > 0) rows.push(["Invalid (skipped)", String(o.skipped.length)]);
  for (const line of renderTable(rows, { columns: ["STATUS", { header: "EVENTS", align: "right" }], empty: "No events: nothing was pending." })) out(line);
  const okCount = reports.filter((r) => r.ok).length;
  out(`${okCount} ok, ${reports.length - okCount + o.skipped.length} not accepted`);
}

process.exitCode = await main(process.argv.slice(2));
