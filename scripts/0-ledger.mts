#!/usr/bin/env node
// Where the billing ledger (the audit log) lives, and the one-time move of a local audit.jsonl
// into a shared ledger in Azure Storage.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { lineWriters } from "../lib/cli/output.mts";

const USAGE = `Usage: 0-ledger.mts where [--json]
       0-ledger.mts import [--from PATH] [--json]

The ledger is the audit log every run plans from: audit.jsonl in the data directory, or append
blobs in Azure Storage shared by many runners (config.json publisher.ledger, or METERING_LEDGER;
see the README, "A shared ledger in Azure Storage").

Commands:
  where    print which ledger the configuration names
  import   copy a local audit.jsonl (default: the data directory's) into the blob ledger the
           configuration names. Each record is copied as the very line it is, into the day
           folder of its time; records the ledger has already are left out, so the import can
           be run again (after an interruption, or after the file grew) and copies each once.
           Run it before the first run against the blob ledger, with no run going on

Options:
  --from PATH   the audit.jsonl to import (default: <data directory>/audit.jsonl)
  --json        print the outcome as JSON
  -v, --verbose show details on errors
  -h, --help    show this help

Environment:
  METERING_DATA_DIR  state directory; METERING_LEDGER  the ledger (overrides config.json)

Exit codes: 0 done, 1 the ledger could not be read or written, 2 usage error or no blob ledger configured
`;

const OPTIONS = { from: { type: "string" }, json: { type: "boolean" } } as const;
const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["command"], run: async ({ values, positionals }) => {
    const [command] = positionals;
    if (command !== "where" && command !== "import") throw new UsageError(`Cannot run 0-ledger ${JSON.stringify(command)}: expected where or import`);
    if (command === "where" && values.from !== undefined) throw new UsageError("Cannot use --from with where: it names the file to import");
    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "any", allowMissingConfig: true }, async (publisher) => {
      const spec = publisher.ledgerSpec;
      if (command === "where") {
        const store = spec.kind === "file" ? await publisher.ledger() : undefined;
        const where = store?.where ?? `${spec.kind === "blob" ? `${spec.blobEndpoint}${spec.container}/${spec.prefix}` : ""}`;
        if (values.json) out(JSON.stringify({ ...spec, where }, null, 2));
        else out(`${spec.kind} ${where}${spec.kind === "blob" && spec.shards ? ` (${spec.shards} shards)` : ""}`);
        return EXIT_OK;
      }
      if (spec.kind !== "blob") {
        throw new UsageError("Cannot import: the configured ledger is the local file already; set publisher.ledger in config.json (or METERING_LEDGER) to a blob ledger first");
      }
      const from = String(values.from ?? publisher.paths.auditPath);
      const { createReadStream } = await import("node:fs");
      const { stat } = await import("node:fs/promises");
      const { createInterface } = await import("node:readline");
      await stat(from).catch(() => {
        throw new UsageError(`Cannot import ${from}: no such file`);
      });
      const store = await publisher.ledger();
      progress(`Importing ${from} into ${store.where}`);
      const lines = createInterface({ input: createReadStream(from, { encoding: "utf8" }), crlfDelay: Infinity });
      const result = await store.importLines!({ lines, onProgress: (done) => progress(`${done} record(s) done`) });
      if (values.json) out(JSON.stringify({ from, to: store.where, ...result }, null, 2));
      progress(`Imported ${result.imported} record(s); ${result.present} were there already${result.invalid ? `; ${result.invalid} line(s) are not records and were left out` : ""}`);
      return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
