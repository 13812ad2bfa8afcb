#!/usr/bin/env node
// Billed usage per customer × dimension × period from the audit log (the reconciled state where
// 4-reconcile settled an event), with the amount per customer and in total where config prices it.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { ConfigInvalidError, describeWriteError, StateWriteError, UsageError } from "../lib/core/errors.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { lineWriters, renderTable, widthOf } from "../lib/cli/output.mts";

const USAGE = `Usage: 4-report.mts [options]

Billed usage per customer, dimension and period (UTC) from the audit log: events the API
accepted, and events 4-reconcile settled as billed; events settled as not billed and refusals
are left out, events of unknown fate are counted apart. Where config.json has prices
(plans.<planId>.currency and plans.<planId>.dimensions.<dimension>.price), the amount per
customer and in total: a preview of the bill. Reads the audit log only; sends nothing.

Options:
  --since YYYY-MM-DD      first UTC day (default: the first day of --until's month)
  --until YYYY-MM-DD      last UTC day, inclusive (default: today)
  --by hour|day|month     period of the figures (default: day)
  --customer <sub>/<mrg>  only this customer (subscription id / managed resource group)
  --format table|csv|json|html
                          table (default), CSV, JSON, or one self-contained HTML page with a
                          chart per dimension and a per-customer table (loads nothing)
  --json                  same as --format json
  --out FILE              write to FILE instead of stdout (needed for html on a terminal)
  -v, --verbose           show details on errors
  -h, --help              show this help

Environment:
  METERING_DATA_DIR  state directory (config.json, audit.jsonl)

Exit codes: 0 the report was made, 1 it could not be read or written, 2 usage error or a bad
price in config.json (nothing written)
`;

const OPTIONS = {
  since: { type: "string" }, until: { type: "string" }, by: { type: "string" }, customer: { type: "string" },
  format: { type: "string" }, json: { type: "boolean" }, out: { type: "string" },
} as const;
const FORMATS = ["table", "csv", "json", "html"] as const;
type Format = (typeof FORMATS)[number];
const { progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const report = await import("../lib/metering/report.mts");
    const format = (values.json === true ? "json" : (values.format ?? "table")) as Format;
    if (!FORMATS.includes(format)) throw new UsageError(`Cannot use --format ${JSON.stringify(values.format)}: expected one of ${FORMATS.join(", ")}`);
    if (values.json === true && values.format !== undefined && values.format !== "json") throw new UsageError(`Cannot use --json with --format ${values.format}: choose one`);
    const by = (values.by ?? "day") as (typeof report.REPORT_GRANULARITIES)[number];
    if (!report.REPORT_GRANULARITIES.includes(by)) throw new UsageError(`Cannot use --by ${JSON.stringify(values.by)}: expected one of ${report.REPORT_GRANULARITIES.join(", ")}`);
    const nowMs = Date.now();
    const defaults = report.defaultReportPeriod(nowMs);
    const day = (name: string, fallback: number) => {
      const text = values[name] as string | undefined;
      if (text === undefined) return fallback;
      const ms = report.parseReportDay(text);
      if (ms === undefined) throw new UsageError(`Cannot use --${name} ${JSON.stringify(text)}: expected a date YYYY-MM-DD (UTC)`);
      return ms;
    };
    // Only --until: from the first day of its month; only --since: until today.
    const untilMs = day("until", defaults.untilMs);
    const sinceMs = day("since", report.defaultReportPeriod(untilMs).sinceMs);
    const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    if (sinceMs > untilMs) throw new UsageError(`Cannot report: --since ${iso(sinceMs)} is after --until ${iso(untilMs)}`);
    const periods = report.periodsBetween(sinceMs, untilMs, by).length;
    if (periods > report.MAX_REPORT_PERIODS) throw new UsageError(`Cannot report ${periods} periods of an ${by}: at most ${report.MAX_REPORT_PERIODS}; use a coarser --by or a shorter period`);
    let only: { subscriptionId: string; managedResourceGroup: string } | undefined;
    if (values.customer !== undefined) {
      const text = String(values.customer);
      const slash = text.indexOf("/");
      if (slash < 0) throw new UsageError(`Cannot use --customer ${JSON.stringify(text)}: expected <subscription>/<managed-resource-group>`);
      only = { subscriptionId: parseSubscriptionId(text.slice(0, slash)), managedResourceGroup: parseResourceGroupName(text.slice(slash + 1), "managed resource group") };
    }
    const file = values.out as string | undefined;
    if (file === "") throw new UsageError("Cannot use --out \"\": give a file name");
    if (format === "html" && file === undefined && process.stdout.isTTY) throw new UsageError("Cannot print an HTML page on a terminal: give --out report.html (or pipe it)");
    if (file !== undefined) {
      const { stat } = await import("node:fs/promises");
      const { dirname } = await import("node:path");
      const dir = await stat(dirname(file)).catch(() => undefined);
      if (!dir?.isDirectory()) throw new UsageError(`Cannot write --out ${JSON.stringify(file)}: the directory ${JSON.stringify(dirname(file))} does not exist`);
      if ((await stat(file).catch(() => undefined))?.isDirectory()) throw new UsageError(`Cannot write --out ${JSON.stringify(file)}: it is a directory; give a file name`);
    }

    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "any", allowMissingConfig: true }, async (publisher) => {
      const priced = report.priceListOf(publisher.config);
      if (priced.problem !== undefined) {
        throw new ConfigInvalidError(`Cannot price the report: ${priced.problem} in ${publisher.paths.configPath}; fix it, or remove "plans" for a report without amounts`, { path: publisher.paths.configPath, problems: [priced.problem] });
      }
      const { loadPeriodLedger } = await import("../lib/metering/reconcile.mts");
      const ledger = await loadPeriodLedger({ store: await publisher.ledger(), sinceMs });
      const result = report.buildUsageReport({ ledger, sinceMs, untilMs, by, prices: priced.prices, ...(only ? { only } : {}) });

      let text: string;
      if (format === "json") text = `${JSON.stringify(result, null, 2)}\n`;
      else if (format === "csv") text = report.reportCsv(result);
      else if (format === "html") {
        const { renderReportHtml } = await import("../lib/metering/report-html.mts");
        text = renderReportHtml(result, { generatedAt: new Date(nowMs).toISOString().slice(0, 16).replace("T", " ") + " UTC" });
      } else text = `${_tableLines(result, report.quantityText, widthOf(file === undefined ? process.stdout : undefined)).join("\n")}\n`;

      if (file === undefined) process.stdout.write(text);
      else {
        const { writeFile } = await import("node:fs/promises");
        await writeFile(file, text).catch((error) => {
          throw new StateWriteError(`Cannot write the report to ${file}: ${describeWriteError(error)}; choose another --out`, { path: file, errno: (error as NodeJS.ErrnoException).code, cause: error });
        });
        progress(`Wrote the ${format} report (${result.since} to ${result.until}, per ${by}) to ${file}`);
      }
      if (format !== "json") {
        if (result.unresolved.count > 0) progress(`${result.unresolved.count} event(s) of unknown fate are not counted: run 4-reconcile (or 2-emit-meter --resend inside the 24-hour window)`);
        for (const u of result.unpriced) progress(`No price for ${u.dimension} of plan ${u.planId} in config.json: its usage has no amount`);
      }
      return EXIT_OK;
    });
  } });
}

function _tableLines(r: import("../lib/metering/report.mts").UsageReport, q: (n: number) => string, width: number): string[] {
  const priced = r.totals.amounts.length > 0;
  const amountOf = (c: (typeof r.cells)[number]) => (c.amount === undefined ? "" : `${c.currency} ${c.amount}`);
  const rows = r.cells.map((c) => [`${c.customer.subscriptionId}/${c.customer.managedResourceGroup}`, c.dimension, c.period, q(c.quantity), String(c.count), ...(priced ? [amountOf(c)] : [])]);
  const lines = renderTable(rows, {
    columns: [
      { header: "CUSTOMER", fit: "middle" }, { header: "DIMENSION", fit: "middle" }, r.by.toUpperCase(),
      { header: "QUANTITY", align: "right" }, { header: "EVENTS", align: "right" }, ...(priced ? [{ header: "AMOUNT", align: "right" as const }] : []),
    ],
    width,
    empty: `No billed usage in the audit log from ${r.since} to ${r.until}.`,
  });
  if (r.cells.length > 0) {
    lines.push("");
    for (const t of r.totals.byDimension) lines.push(`Total ${t.dimension}: ${q(t.quantity)} (${t.count} events)`);
    const amounts = r.customers.flatMap((c) => c.amounts.map((a) => [`${c.customer.subscriptionId}/${c.customer.managedResourceGroup}`, `${a.currency} ${a.amount}`]));
    if (amounts.length > 0) {
      lines.push("");
      lines.push(...renderTable(amounts, { columns: [{ header: "CUSTOMER", fit: "middle" }, { header: "AMOUNT", align: "right" }], width }));
    }
    for (const a of r.totals.amounts) lines.push(`Total amount: ${a.currency} ${a.amount}`);
  }
  return lines;
}

process.exitCode = await main(process.argv.slice(2));
