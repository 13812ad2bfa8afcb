#!/usr/bin/env node
// Checks every link of the trust chain (config, credential, Key Vault key, issuer documents,
// customers' identities, token exchange, billing) and prints ✓ or ✗ with a fix for each ✗.
import { UsageError } from "../lib/core/errors.mts";
import { EXIT_FAILED, EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import type { DoctorCheck } from "../lib/doctor/doctor.mts";
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

Options:
  --json         print the findings as JSON: {ok, checks: [{id, target, title, status, detail, fix}]}
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR, AZURE_AUTHORITY_HOST, AZURE_TOKEN_CREDENTIALS, METERING_DISABLE_INSTANCE_DISCOVERY,
  METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION (see docs/internals.md); \`az\` on PATH, signed in

Exit codes: 0 every link works, 1 at least one ✗, 2 usage error or customer not connected
`;

const OPTIONS = { json: { type: "boolean" } } as const;
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

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS, optionalPositionals: ["subscription", "managed-resource-group"],
    run: async ({ values, positionals }) => {
      if (positionals.length === 1) throw new UsageError("Cannot run: expected no arguments, or <subscription> <managed-resource-group>, got 1 argument(s)");
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
