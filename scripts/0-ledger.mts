#!/usr/bin/env node
// Where the billing ledger (the audit log) lives, and the one-time move of a local audit.jsonl
// into a shared ledger in Azure Storage.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { lineWriters } from "../lib/cli/output.mts";

const USAGE = `Usage: 0-ledger.mts where [--json]
       0-ledger.mts import [--from PATH] [--json]
       0-ledger.mts push-config [--json]

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
  push-config
           copy config.json into the blob ledger (<prefix>config.json) for runners that have no
           data directory of their own: a job's replica with METERING_LEDGER and no config.json
           takes that copy. Once pushed, every change the scripts make to config.json
           (1-connect-customer, 1-disconnect-customer, 0-isv-setup, 0-publisher-app) rewrites
           the copy too; push again after editing config.json by hand

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
    if (command !== "where" && command !== "import" && command !== "push-config") throw new UsageError(`Cannot run 0-ledger ${JSON.stringify(command)}: expected where, import or push-config`);
    if (command !== "import" && values.from !== undefined) throw new UsageError(`Cannot use --from with ${command}: it names the file to import`);
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
        throw new UsageError(`Cannot ${command === "import" ? "import" : "push config.json"}: the configured ledger is the local file${command === "import" ? " already" : ""}; set publisher.ledger in config.json (or METERING_LEDGER) to a blob ledger first`);
      }
      if (command === "push-config") {
        const { readFile } = await import("node:fs/promises");
        const { configPath } = publisher.paths;
        const text = await readFile(configPath, "utf8").catch(() => {
          throw new UsageError(`Cannot push config.json: ${configPath} does not exist (run 0-add-defaults and 0-isv-setup first)`);
        });
        const store = await publisher.ledger();
        await store.sharedConfig!.put(text);
        if (values.json) out(JSON.stringify({ from: configPath, to: `${store.where}config.json`, bytes: text.length }, null, 2));
        progress(`Copied ${configPath} to ${store.where}config.json`);
        return EXIT_OK;
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
      // Opened when the import starts reading (after it holds its lease): a line interface made
      // earlier would read the file, with nobody listening, before the iteration begins.
      const lines = { [Symbol.asyncIterator]: () => createInterface({ input: createReadStream(from, { encoding: "utf8" }), crlfDelay: Infinity })[Symbol.asyncIterator]() };
      const result = await store.importLines!({ lines, onProgress: (done) => progress(`${done} record(s) done`) });
      if (values.json) out(JSON.stringify({ from, to: store.where, ...result }, null, 2));
      progress(`Imported ${result.imported} record(s); ${result.present} were there already${result.invalid ? `; ${result.invalid} line(s) are not records and were left out` : ""}`);
      return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
