#!/usr/bin/env node
// Checks every link of the trust chain (config, credential, Key Vault key, issuer documents,
// customers' identities, token exchange, billing) and prints ✓ or ✗ with a fix for each ✗.
import { UsageError } from "../lib/core/errors.mts";
import { EXIT_FAILED, EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { parseDurationOption, parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import type { DoctorCheck } from "../lib/doctor/doctor.mts";
import type { AttentionItem } from "../lib/metering/attention.mts";
import { lineWriters, renderTable, widthOf, wrapText } from "../lib/cli/output.mts";

const USAGE = `Usage: doctor.mts [<subscription> <managed-resource-group>] [options]

Checks every link federation and metering depend on and prints ✓ (ok), ✗ (broken, with the
fix) or - (skipped: an earlier link is broken):
  publisher  config.json complete and valid; the ISV credential works; the Key Vault signing
             key exists, can sign and equals the JWKS entry of its kid; the discovery document
             and JWKS are readable anonymously, the discovery issuer equals publisher.idp.issuer
             exactly, jwks_uri points to the JWKS, every key has kty/use/alg/kid/n/e; a test
             assertion verifies against the published JWKS
  customer   the UAMI and its federated credential exist and issuer, subject and audience match
             config exactly (a case-only or trailing-slash difference is named); the token
             exchange works; the managed app has billing details and a plan that config
             records; the dimensions in the audit log were not refused as unknown
With a subscription and managed resource group, only that customer is checked.

With --usage, only the ledger: events refused for good whose hour is still in the API's
window, events of unknown fate, and open events whose hour leaves the window within
--warn-before. It reads the audit log alone (no sign-in, nothing sent), for a health probe.

Options:
  --json         print the findings as JSON: {ok, checks: [{id, target, title, status, detail, fix}]}
                 (with --usage: {ok, counts, failed, unknown, expiring})
  --usage        check the ledger for events that need a person (see above)
  --warn-before DUR  with --usage: 3h (default), 90m, 1h30m
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR, AZURE_AUTHORITY_HOST, AZURE_TOKEN_CREDENTIALS, METERING_DISABLE_INSTANCE_DISCOVERY,
  METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION (see docs/internals.md); \`az\` on PATH, signed in

Exit codes: 0 every link works (--usage: nothing needs a person), 1 at least one ✗ (--usage:
something does), 2 usage error or customer not connected
`;

const OPTIONS = { json: { type: "boolean" }, usage: { type: "boolean" }, "warn-before": { type: "string" } } as const;
const MARK: Record<DoctorCheck["status"], string> = { ok: "✓", fail: "✗", skip: "-" };

const { out, progress } = lineWriters(process);

function printTable(checks: DoctorCheck[]) {
  const width = widthOf(process.stdout);
  for (const target of [...new Set(checks.map((c) => c.target))]) {
    out(target === "publisher" ? "publisher" : `customer ${target}`);
    const mine = checks.filter((c) => c.target === target);
    const rows = mine.map((c) => [MARK[c.status], c.title, c.detail]);
    const lines = renderTable(rows, { columns: [" ", "CHECK", { header: "DETAIL", fit: "wrap", minWidth: 24 }], width: width - 2, gap: 1 });
    // The fix goes under its check: a row per check, then its fix lines.
    let row = 0;
    out(`  ${lines[0]}`);
    for (const line of lines.slice(1)) {
      if (line.startsWith(MARK.ok) || line.startsWith(MARK.fail) || line.startsWith(MARK.skip)) {
        if (row > 0 && mine[row - 1].fix) for (const f of wrapText(`fix: ${mine[row - 1].fix}`, width - 4)) out(`    ${f}`);
        row++;
      }
      out(`  ${line}`);
    }
    if (row > 0 && mine[row - 1].fix) for (const f of wrapText(`fix: ${mine[row - 1].fix}`, width - 4)) out(`    ${f}`);
  }
}

/** doctor --usage: the ledger's events that need a person, as a table or JSON. Exit 1 when there are any. */
async function usageCheck(o: { json: boolean; warnBefore: string | undefined }): Promise<number> {
  const { DEFAULT_WARN_BEFORE_MS } = await import("../lib/metering/attention.mts");
  const warnBeforeMs = parseDurationOption(o.warnBefore, { name: "warn-before", maxMs: 24 * 3_600_000, fallbackMs: DEFAULT_WARN_BEFORE_MS });
  const { usageAttention } = await import("../lib/doctor/usage.mts");
  const { usePublisher } = await import("../lib/publisher/context.mts");
  const a = await usePublisher({ stage: "any", allowMissingConfig: true }, async (publisher) => usageAttention({ store: await publisher.ledger(), warnBeforeMs }));
  if (o.json) out(JSON.stringify({ ok: !a.needsPerson, counts: a.counts, failed: a.failed, unknown: a.unknown, expiring: a.expiring }, null, 2));
  else {
    const row = (needs: string, i: AttentionItem) => [needs, `${i.subscriptionId}/${i.managedResourceGroup}`, i.dimension, i.effectiveStartTime, String(i.quantity), i.status];
    const rows = [...a.failed.map((i) => row("refused", i)), ...a.unknown.map((i) => row("unknown", i)), ...a.expiring.map((i) => row("expiring", i))];
    const columns = ["NEEDS", "CUSTOMER", "DIMENSION", "HOUR", { header: "QUANTITY", align: "right" as const }, "STATUS"];
    for (const line of renderTable(rows, { columns, empty: `Nothing needs a person (${a.where}).` })) out(line);
  }
  progress(a.needsPerson
    ? `${a.counts.failed} refused, ${a.counts.unknown} of unknown fate, ${a.counts.expiring} open and leaving the window within ${o.warnBefore ?? "3h"}`
    : "Nothing needs a person");
  return a.needsPerson ? EXIT_FAILED : EXIT_OK;
}

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS, optionalPositionals: ["subscription", "managed-resource-group"],
    run: async ({ values, positionals }) => {
      if (positionals.length === 1) throw new UsageError("Cannot run: expected no arguments, or <subscription> <managed-resource-group>, got 1 argument(s)");
      if (values["warn-before"] !== undefined && !values.usage) throw new UsageError("Cannot use --warn-before without --usage");
      if (values.usage) {
        if (positionals.length > 0) throw new UsageError("Cannot use --usage with a customer: it checks the whole ledger");
        return await usageCheck({ json: values.json === true, warnBefore: values["warn-before"] as string | undefined });
      }
      const customer = positionals.length === 2
        ? { subscriptionId: parseSubscriptionId(positionals[0]), managedResourceGroup: parseResourceGroupName(positionals[1], "managed resource group") }
        : undefined;
      const { runDoctor } = await import("../lib/doctor/doctor.mts");
      const checks = await runDoctor({
        customer,
        onProgress: values.verbose ? progress : undefined,
      });
      const failed = checks.filter((c) => c.status === "fail").length;
      if (values.json) out(JSON.stringify({ ok: failed === 0, checks }, null, 2));
      else printTable(checks);
      progress(failed === 0 ? `${checks.filter((c) => c.status === "ok").length} ok, 0 broken` : `${checks.filter((c) => c.status === "ok").length} ok, ${failed} broken`);
      return failed === 0 ? EXIT_OK : EXIT_FAILED;
    },
  });
}

process.exitCode = await main(process.argv.slice(2));
