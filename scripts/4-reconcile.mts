#!/usr/bin/env node
// Compares what the audit log says was billed with what the metering API reports, per customer,
// dimension and UTC day, and settles events of unknown fate where the API's figures allow one answer.
import { EXIT_FAILED, EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { lineWriters, renderTable, widthOf } from "../lib/cli/output.mts";

const USAGE = `Usage: 4-reconcile.mts [<subscription> <managed-resource-group>] [options]

Reads GET /api/usageEvents for the period as the publisher app (0-publisher-app) and compares it
with the audit log folded the same way, per customer, dimension and UTC day. Verdicts: match,
missing at Microsoft (recorded accepted, the API does not have it), unknown to the ledger (the
API has usage this log never recorded: another sender), quantity differs, Rejected and Mismatch
(as the API reports them), unresolved. Events sent without a known fate and past the API's
24-hour window are settled where the day's figures leave exactly one explanation: a
"reconcile" record in the audit log closes each as billed or not billed, with the figures as
evidence; --resend, doctor and 2-emit-meter read them as settled from then on.

Arguments (optional, both or neither):
  subscription             one connected customer's subscription
  managed-resource-group   and its managed resource group

Options:
  --since YYYY-MM-DD  first UTC day (default: 6 days before --until)
  --until YYYY-MM-DD  last UTC day, inclusive (default: today)
  --json              print the comparison, the settled and the unresolved events as JSON
  -v, --verbose       show details on errors
  -h, --help          show this help

Environment:
  METERING_DATA_DIR  state directory (after 0-isv-setup and 0-publisher-app)

Exit codes: 0 everything matches and nothing is unresolved, 1 any discrepancy or unresolved
event (or the API could not be read), 2 usage error or setup missing
`;

const OPTIONS = { since: { type: "string" }, until: { type: "string" }, json: { type: "boolean" } } as const;
const DAY_MS = 86_400_000;
const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, optionalPositionals: ["subscription", "managed-resource-group"], run: async ({ values, positionals }) => {
    const json = values.json === true;
    if (positionals.length === 1) throw new UsageError("Cannot reconcile one customer without its managed resource group: give <subscription> <managed-resource-group>, or neither");
    const ref = positionals.length === 2
      ? { subscriptionId: parseSubscriptionId(positionals[0]), managedResourceGroup: parseResourceGroupName(positionals[1], "managed resource group") }
      : undefined;
    const { parseUtcDay } = await import("../lib/metering/reconcile.mts");
    const day = (name: string, text: string | undefined, fallback: number) => {
      if (text === undefined) return fallback;
      const ms = parseUtcDay(text);
      if (ms === undefined) throw new UsageError(`Cannot use --${name} ${JSON.stringify(text)}: expected a date YYYY-MM-DD (UTC)`);
      return ms;
    };
    const nowMs = Date.now();
    const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
    const untilMs = day("until", values.until as string | undefined, today);
    const sinceMs = day("since", values.since as string | undefined, untilMs - 6 * DAY_MS);
    if (sinceMs > untilMs) throw new UsageError(`Cannot reconcile: --since ${new Date(sinceMs).toISOString().slice(0, 10)} is after --until ${new Date(untilMs).toISOString().slice(0, 10)}`);
    if (untilMs > today) throw new UsageError(`Cannot reconcile the future: --until ${new Date(untilMs).toISOString().slice(0, 10)} is after today (${new Date(today).toISOString().slice(0, 10)} UTC)`);
    const since = new Date(sinceMs).toISOString().slice(0, 10);
    const until = new Date(untilMs).toISOString().slice(0, 10);

    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "idp" }, async (publisher) => {
      const app = publisher.publisherApp();
      const only = ref ? { ...ref, resourceId: publisher.customer(ref).billing.resourceId } : undefined;
      const customers = Object.entries(publisher.config.customers).flatMap(([sub, groups]) =>
        Object.entries(groups ?? {}).map(([mrg, c]) => ({ subscriptionId: sub, managedResourceGroup: mrg, resourceId: String(c?.billing?.resourceId ?? "") })));
      const { createProgress } = await import("../lib/cli/progress.mts");
      const { runReconciliation } = await import("../lib/metering/reconcile.mts");
      const client = await publisher.meteringClient();
      const audit = await publisher.audit();
      progress(`Reconciling ${since} to ${until}${ref ? ` for ${ref.subscriptionId}/${ref.managedResourceGroup}` : ""} as the publisher app ${app.app.appId}`);
      let bar: ReturnType<typeof createProgress> | undefined;
      const result = await runReconciliation({
        ledger: await publisher.ledger(), client, customers, since, until, nowMs, ...(only ? { only } : {}),
        getToken: async () => (await app.getToken()).token,
        append: (record) => audit.append(record),
        onProgress: ({ phase, done, total }) => {
          if (phase !== "api" || total < 2) return;
          bar ??= createProgress({ stream: process.stderr, total, label: "usageEvents (7-day pieces)", enabled: !json || process.stderr.isTTY === true });
          bar.update(done);
          if (done === total) bar.done();
        },
      });

      if (json) out(JSON.stringify(result, null, 2));
      else {
        const who = (l: (typeof result.lines)[number]) => (l.customer ? `${l.customer.subscriptionId}/${l.customer.managedResourceGroup}` : `(not in config) ${l.resourceId}`);
        const rows = result.lines.map((l) => [
          who(l), l.dimension, l.day, `${l.ledgerQuantity}/${l.ledgerCount}`,
          l.apiCount === undefined ? "-" : `${l.apiQuantity}/${l.apiCount}`, l.reconStatus ?? "-", l.verdict,
        ]);
        const lines = renderTable(rows, {
          columns: [
            { header: "CUSTOMER", fit: "middle" }, { header: "DIMENSION", fit: "middle" }, "DAY",
            { header: "LEDGER qty/n", align: "right" }, { header: "API qty/n", align: "right" }, "STATUS", { header: "VERDICT", fit: "wrap" },
          ],
          width: widthOf(process.stdout),
          empty: `No usage in the audit log or at the API from ${since} to ${until}.`,
        });
        for (const line of lines) out(line);
        for (const l of result.lines) if (l.verdict !== "match" && l.note) progress(`${l.verdict}: ${who(l)} ${l.dimension} ${l.day}: ${l.note}`);
        for (const s of result.settlements) progress(`Settled as ${s.billed ? "billed" : "not billed"}: ${s.event.quantity} ${s.event.dimension} for ${s.event.effectiveStartTime} (${s.customer.subscriptionId}/${s.customer.managedResourceGroup})`);
        for (const u of result.unresolved) progress(`Unresolved: ${u.event.quantity} ${u.event.dimension} for ${u.event.effectiveStartTime} (${u.customer.subscriptionId}/${u.customer.managedResourceGroup}): ${u.reason}`);
        const bad = result.lines.filter((l) => l.verdict !== "match").length;
        progress(`${result.lines.length - bad} match, ${bad} differ, ${result.settlements.length} settled, ${result.unresolved.length} unresolved`);
      }
      return result.ok ? EXIT_OK : EXIT_FAILED;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
