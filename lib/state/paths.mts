// Where the tool keeps its state (config.json, audit.jsonl). Cloud Shell loses everything
// outside $HOME/clouddrive between sessions, so there the state goes onto the clouddrive.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Settings } from "../core/settings.mts";

const CONFIG_FILE_NAME = "config.json";
const AUDIT_FILE_NAME = "audit.jsonl";

export interface DataDirOptions {
  /** Directory relative paths resolve against; defaults to `process.cwd()`. */
  cwd?: string;
}

/**
 * Resolves the state directory: `$METERING_DATA_DIR`, else `$HOME/clouddrive/metering-data`
 * in Azure Cloud Shell (`AZURE_HTTP_USER_AGENT` starts with `cloud-shell/`), else
 * `./metering-data`. Always returns an absolute path; creates nothing.
 *
 * @example
 * resolveDataDir(readSettings({ METERING_DATA_DIR: "/tmp/m" })) // "/tmp/m"
 */
export function resolveDataDir(settings: Pick<Settings, "dataDir" | "cloudShell" | "home">, options: DataDirOptions = {}): string {
  const cwd = options.cwd ?? process.cwd();
  if (settings.dataDir) return resolve(cwd, settings.dataDir);
  if (settings.cloudShell) return join(settings.home || homedir(), "clouddrive", "metering-data");
  return resolve(cwd, "metering-data");
}

/** Path of config.json inside a data directory. */
export function configPathIn(dataDir: string): string {
  return join(dataDir, CONFIG_FILE_NAME);
}

/** Path of audit.jsonl inside a data directory. */
export function auditPathIn(dataDir: string): string {
  return join(dataDir, AUDIT_FILE_NAME);
}
