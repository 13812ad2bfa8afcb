#!/usr/bin/env node
// Sends usage events to the Marketplace metering API as each customer's UAMI (workload
// identity federation, no secret anywhere): one event from the arguments, or a CSV/JSONL file.
import { EXIT_FAILED, EXIT_OK, MAX_PROBLEMS_SHOWN, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { DEFAULT_MAX_QUANTITY, parseDimension, parseIntOption, parseHoursAgo, parseMaxQuantity, parseQuantity, parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { statusMeaning } from "../lib/metering/status.mts";
import { UsageRows, type RowProblem } from "../lib/metering/usage-file.mts";
import { checkRunRows, fileRows, oneEventDryRun, oneEventRows, planShape, planUsageRun, runUsage } from "../lib/metering/run.mts";
import type { EventReport, SubmissionPlan } from "../lib/metering/submission.mts";
import type { Publisher } from "../lib/publisher/context.mts";
import { lineWriters, renderTable } from "../lib/cli/output.mts";

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
  --as uami|publisher-app
                      who signs in: each customer's UAMI, one token per customer in its
                      tenant (default), or the publisher app of 0-publisher-app, one token
                      in the ISV tenant for every customer (central metering); the default
                      can be set as publisher.meterAs in config.json
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
  as: { type: "string" },
} as const;
const EVENT_POSITIONALS = ["subscription", "managed-resource-group", "hours-ago", "dimension", "quantity"];

const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS,
    positionals: (values) => (values.file !== undefined || values.resend ? [] : EVENT_POSITIONALS),
    run: async ({ values, positionals }) => {
      const json = values.json === true;
      const concurrency = parseIntOption(values.concurrency, { name: "concurrency", min: 1, max: 64, fallback: 8 });
      const waitLockS = parseIntOption(values["wait-lock"], { name: "wait-lock", min: 0, max: 86_400, fallback: 600 });
      if (values.file !== undefined && values.resend) throw new UsageError("Cannot use --file with --resend: a run with a file resends unconfirmed events anyway");
      const single = values.file === undefined && !values.resend;
      const now = Date.now();

      // 1. Input, checked in full before anything is signed, sent or written.
      const maxQuantity = values["max-quantity"] === undefined ? DEFAULT_MAX_QUANTITY : parseMaxQuantity(String(values["max-quantity"]));
      const read = single
        ? oneEventRows({
          subscriptionId: parseSubscriptionId(positionals[0]), managedResourceGroup: parseResourceGroupName(positionals[1], "managed resource group"),
          hoursAgo: parseHoursAgo(positionals[2]), dimension: parseDimension(positionals[3]), quantity: parseQuantity(positionals[4], { maxQuantity }), now,
        })
        : values.file !== undefined
        ? await fileRows(String(values.file), { format: values.format as string | undefined, now, maxQuantity, stdin: process.stdin })
        : { rows: new UsageRows(), problems: [], digest: undefined, source: "the audit log", fromFile: false };

      const { usePublisher } = await import("../lib/publisher/context.mts");
      const onPropagationRetry = ({ clientId, aadsts, retryAfterInMs }: { clientId: string; aadsts: number; retryAfterInMs: number }) =>
        progress(`AADSTS${aadsts} for UAMI ${clientId}: the new federated credential may not have reached Entra yet; retrying in ${(retryAfterInMs / 1000).toFixed(1)} s`);
      return await usePublisher({ onPropagationRetry }, async (publisher) => {
        const { rows, problems, digest, source } = checkRunRows(read, publisher, { skipInvalid: values["skip-invalid"] === true });
        // Who signs in: --as, else publisher.meterAs in config, else each customer's UAMI.
        const meterAs = String(values.as ?? publisher.config.publisher.meterAs ?? "uami");
        if (meterAs !== "uami" && meterAs !== "publisher-app") throw new UsageError(`Cannot meter --as ${JSON.stringify(meterAs)}: expected uami or publisher-app`);
        // Without publisher.app in config: exit 2 before anything is signed or sent.
        if (meterAs === "publisher-app") publisher.publisherApp();
        const run = { publisher, rows, digest, source, single, resend: values.resend === true, force: values.force === true, onNote: progress, as: meterAs as "uami" | "publisher-app" };
        if (values["dry-run"]) return dryRun(await planUsageRun(run), { publisher, json, single, problems });

        // 2. Send, under the data directory's run lock.
        const { createProgress } = await import("../lib/cli/progress.mts");
        let bar: ReturnType<typeof createProgress> | undefined;
        const result = await runUsage({
          ...run, concurrency, waitLockMs: waitLockS * 1000, skipped: problems,
          onProgress: (p, total) => {
            bar ??= createProgress({ stream: process.stderr, total, label: "events", enabled: !single && total > 25 });
            bar.update(p.eventsDone, `events, ${p.customersDone}/${p.customersTotal} customers`);
          },
        });
        bar?.done();
        const { reports, counts, ok } = result;
        if (single && !values.resend) {
          const mine = reports.find((r) => r.line === 0) ?? reports[0];
          for (const r of reports) if (r !== mine) progress(`Earlier event ${r.event.quantity} ${r.event.dimension} for ${r.event.effectiveStartTime}: ${r.status}${r.message ? ` (${r.message})` : ""}`);
          return reportOne(mine, { json }) === EXIT_OK && ok ? EXIT_OK : EXIT_FAILED;
        }
        reportMany(reports, { counts, json, skipped: problems, customers: result.customers });
        return ok && problems.length === 0 ? EXIT_OK : EXIT_FAILED;
      });
    },
  });
}

function dryRun(plan: SubmissionPlan, o: { publisher: Publisher; json: boolean; single: boolean; problems: RowProblem[] }): number {
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
    out(JSON.stringify({ dryRun: true, wouldSend: plan.work, settled: plan.settled, unknown: plan.unknown, skipped: problems, customers, batchCalls }, null, 2));
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

/** The end of a file run: a table per status, failures listed, or the JSON report. */
function reportMany(reports: EventReport[], o: { counts: Record<string, number>; json: boolean; skipped: RowProblem[]; customers: number }) {
  if (o.json) {
    out(JSON.stringify({ ok: reports.every((r) => r.ok) && o.skipped.length === 0, counts: o.counts, skipped: o.skipped, events: reports }, null, 2));
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
