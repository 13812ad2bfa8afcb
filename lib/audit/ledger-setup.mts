// The shared ledger that 0-isv-setup makes: a private blob container in the issuer's storage
// account with Storage Blob Data Contributor on it for the signed-in ISV (both in
// templates/0-isv-setup.bicep), and the config.json `publisher.ledger` value that names it. What
// a configuration already names is never overwritten by another ledger: its records are there.
import { stat } from "node:fs/promises";
import { LedgerConflictError, UsageError } from "../core/errors.mts";
import { blobEndpointOf, isContainerName, parseLedgerSpec } from "./store.mts";

/** The ledger container setup creates unless told another name. */
export const DEFAULT_LEDGER_CONTAINER = "ledger";

/** config.json's `publisher.ledger` for a blob ledger, as parseLedgerSpec reads it. */
export interface BlobLedgerConfig {
  kind: "blob";
  /** A storage account name (Azure's public cloud), else the account's blob endpoint URL. */
  account: string;
  container: string;
  prefix?: string;
  shards?: number;
  [key: string]: unknown;
}

/**
 * Checks the name of the ledger container to create: a container name, and none of the issuer's
 * public-read containers (records there would be readable by anyone, and the template would make
 * it private). Returns it; UsageError.
 *
 * @example
 * checkLedgerContainer({ container: "ledger", issuerContainers: ["public"] }) // "ledger"
 */
export function checkLedgerContainer(o: { container: string; issuerContainers?: string[]; source?: string }): string {
  const source = o.source ?? "--ledger-container";
  if (!isContainerName(o.container)) {
    throw new UsageError(`Cannot use ${source} ${JSON.stringify(o.container)}: a container name is 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit`);
  }
  if (o.issuerContainers?.includes(o.container)) {
    throw new UsageError(`Cannot use ${source} ${JSON.stringify(o.container)}: it is the issuer's public-read container; choose another name (default ${JSON.stringify(DEFAULT_LEDGER_CONTAINER)})`);
  }
  return o.container;
}

/**
 * `account` for a blob endpoint, as lib/audit/store.mts `blobEndpointOf` resolves it back: the
 * account name when the endpoint is Azure's public `https://<name>.blob.core.windows.net/`, else
 * the endpoint URL itself (another cloud, Azurite).
 *
 * @example
 * ledgerAccountOf("https://contosoledger.blob.core.windows.net/") // "contosoledger"
 * ledgerAccountOf("https://127.0.0.1:10000/devstoreaccount1") // "https://127.0.0.1:10000/devstoreaccount1/"
 */
export function ledgerAccountOf(blobEndpoint: string): string {
  const endpoint = blobEndpointOf(blobEndpoint);
  const [name] = new URL(endpoint).hostname.split(".");
  return _publicEndpointOf(name) === endpoint ? name : endpoint;
}

function _publicEndpointOf(name: string): string | undefined {
  try {
    return blobEndpointOf(name);
  } catch {
    return undefined;
  }
}

/** The `publisher.ledger` value of a ledger in `container` of the account at `blobEndpoint`. */
export function blobLedgerConfig(o: { blobEndpoint: string; container: string }): BlobLedgerConfig {
  return { kind: "blob", account: ledgerAccountOf(o.blobEndpoint), container: checkLedgerContainer({ container: o.container, source: "the ledger container" }) };
}

/**
 * What to do with config.json's `publisher.ledger` (`current`) to make it the blob ledger in
 * `container` of the account at `blobEndpoint` (undefined: an account that does not exist yet):
 * `set` when it names the local file (or nothing), `keep` when it names that container already
 * (its prefix and shards stay). Another blob ledger is LedgerConflictError: its records live
 * there, and switching is the user's decision.
 */
export function planLedgerConfig(o: { current: unknown; blobEndpoint: string | undefined; container: string; path: string }): "set" | "keep" {
  const source = `${o.path} publisher.ledger`;
  const spec = parseLedgerSpec(o.current, source);
  if (spec.kind === "file") return "set";
  const endpoint = o.blobEndpoint === undefined ? undefined : blobEndpointOf(o.blobEndpoint);
  if (endpoint === spec.blobEndpoint && o.container === spec.container) return "keep";
  const wanted = endpoint ? `${endpoint}${o.container}` : `container ${o.container} of the issuer's storage account`;
  throw new LedgerConflictError(
    `Cannot make ${wanted} the ledger: ${source} names the blob ledger ${spec.blobEndpoint}${spec.container}/${spec.prefix} already; run without --ledger blob to keep it, or remove publisher.ledger from config.json first to switch (its records stay there)`,
    { path: o.path },
  );
}

/** True when the local audit log at `auditPath` holds anything (its records do not move to a new ledger by themselves). */
export async function hasLocalRecords(auditPath: string): Promise<boolean> {
  const info = await stat(auditPath).catch((error) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  });
  return (info?.size ?? 0) > 0;
}
