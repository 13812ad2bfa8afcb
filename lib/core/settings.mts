// Every setting the suite takes from its environment, read in one place. Nothing else in lib/
// reads process.env: scripts call readSettings() once and hand the result (or the part a
// function needs) down. @azure/identity reads some of the same variables itself (the authority
// host, AZURE_TOKEN_CREDENTIALS, the managed identity endpoints); they are listed here too so a
// user finds every variable in one table, and so what we log matches what the SDK uses.

type Env = Readonly<Record<string, string | undefined>>;

/** A documented variable: its name, what it does, and its default, in the words of the README. */
export interface SettingVariable {
  name: string;
  what: string;
  default: string;
  /** Read by @azure/identity itself; we read it only to explain or to choose a fallback. */
  sdk?: boolean;
}

/** Every variable readSettings reads. The README's and docs/internals.md's tables list exactly these. */
export const SETTING_VARIABLES: readonly SettingVariable[] = [
  { name: "METERING_DATA_DIR", what: "where config.json and audit.jsonl live", default: "$HOME/clouddrive/metering-data in Cloud Shell, else ./metering-data" },
  { name: "METERING_API_BASE_URL", what: "the Marketplace metering API's base URL", default: "https://marketplaceapi.microsoft.com" },
  { name: "METERING_HTTP_TRY_TIMEOUT_MS", what: "one HTTP attempt's timeout before the retry policy tries again", default: "30000" },
  { name: "METERING_DISABLE_INSTANCE_DISCOVERY", what: "true for an authority host MSAL does not know", default: "false" },
  { name: "METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION", what: "true for vault hosts outside *.vault.azure.net", default: "false" },
  { name: "METERING_LEDGER", what: "where the audit log (the ledger) lives: file, or blob:<account or blob endpoint URL>/<container>[/<prefix>]; overrides config.json publisher.ledger", default: "config.json publisher.ledger, else file (audit.jsonl in the data directory)" },
  { name: "METERING_ASSERTION_PER_IDENTITY", what: "true to sign a client assertion per customer identity instead of one for every exchange with the same subject (for an Entra that refused a reused assertion)", default: "false" },
  { name: "METERING_ROTATION_NOW", what: "ISO 8601 time 0-isv-setup --rotate-key takes as now for its waiting times", default: "the clock" },
  { name: "AZURE_AUTHORITY_HOST", what: "the Entra authority", default: "https://login.microsoftonline.com", sdk: true },
  { name: "AZURE_TOKEN_CREDENTIALS", what: "narrows the publisher credential chain", default: "the full DefaultAzureCredential chain", sdk: true },
  { name: "AZURE_CLIENT_ID", what: "the user-assigned managed identity of the managed identity fallback", default: "system-assigned", sdk: true },
  { name: "IDENTITY_ENDPOINT", what: "a managed identity endpoint (App Service, Container Apps, Arc)", default: "set by Azure compute", sdk: true },
  { name: "IDENTITY_HEADER", what: "the secret header of that endpoint (App Service, Container Apps)", default: "set by Azure compute", sdk: true },
  { name: "IMDS_ENDPOINT", what: "Azure Arc's managed identity endpoint", default: "set by Azure compute", sdk: true },
  { name: "MSI_ENDPOINT", what: "Cloud Shell's managed identity endpoint", default: "set by Azure compute", sdk: true },
  { name: "AZURE_POD_IDENTITY_AUTHORITY_HOST", what: "the host of IMDS, when it is not the usual one", default: "unset", sdk: true },
  { name: "AZURE_HTTP_USER_AGENT", what: "starts with cloud-shell/ in Azure Cloud Shell (chooses the data directory)", default: "set by Cloud Shell", sdk: true },
];

const DEFAULT_METERING_API_BASE_URL = "https://marketplaceapi.microsoft.com";
export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";
/** One HTTP attempt gets this long before it counts as a network timeout and is retried. */
export const DEFAULT_TRY_TIMEOUT_MS = 30_000;

/** The managed identity endpoint the environment names, in the order MSAL picks its source. */
export type ManagedIdentitySource = "App Service" | "Azure Arc" | "Cloud Shell" | "IMDS";

export interface Settings {
  /** METERING_DATA_DIR as given (relative paths resolve against the working directory). */
  dataDir?: string;
  /** Azure Cloud Shell (AZURE_HTTP_USER_AGENT starts with cloud-shell/): state goes to the clouddrive. */
  cloudShell: boolean;
  /** $HOME, for the Cloud Shell data directory. */
  home?: string;
  /** Metering API base URL, no trailing slash. */
  meteringApiBaseUrl: string;
  /** Per-attempt timeout of every HTTP pipeline we build. */
  httpTryTimeoutMs: number;
  /** Entra authority host, no trailing slash (for messages and audit records; the SDK reads it itself). */
  authorityHost: string;
  disableInstanceDiscovery: boolean;
  keyVaultDisableChallengeVerification: boolean;
  /** One signed client assertion per customer identity, not one per subject (lib/identity/federation.mts). */
  assertionPerIdentity: boolean;
  /** AZURE_TOKEN_CREDENTIALS, trimmed and lower-cased ("" when unset). */
  tokenCredentials: string;
  /** AZURE_CLIENT_ID: a user-assigned managed identity for the fallback. */
  managedIdentityClientId?: string;
  managedIdentitySource?: ManagedIdentitySource;
  /** METERING_ROTATION_NOW as given (rotation parses and checks it). */
  rotationNow?: string;
  /** METERING_LEDGER as given (lib/audit/store.mts parseLedgerSpec checks it). */
  ledger?: string;
}

/**
 * Which managed identity endpoint the environment names, the way @azure/identity (MSAL) picks
 * its source: App Service / Functions / Container Apps (IDENTITY_ENDPOINT + IDENTITY_HEADER),
 * Azure Arc (IDENTITY_ENDPOINT + IMDS_ENDPOINT), Cloud Shell (MSI_ENDPOINT), IMDS redirected by
 * AZURE_POD_IDENTITY_AUTHORITY_HOST. Undefined when none is named (a VM's plain IMDS needs no
 * variable: DefaultAzureCredential's unnarrowed chain finds it).
 */
function _managedIdentitySource(env: Env): ManagedIdentitySource | undefined {
  if (env.IDENTITY_ENDPOINT && env.IDENTITY_HEADER) return "App Service";
  if (env.IDENTITY_ENDPOINT && env.IMDS_ENDPOINT) return "Azure Arc";
  if (env.MSI_ENDPOINT) return "Cloud Shell";
  if (env.AZURE_POD_IDENTITY_AUTHORITY_HOST) return "IMDS";
  return undefined;
}

const _flag = (v: string | undefined) => v === "true";
const _nonEmpty = (v: string | undefined) => (v && v.trim() !== "" ? v : undefined);

/**
 * Reads every setting from `env` (default the process environment). Pure apart from that
 * default; an unusable number falls back to its default, as the SDK does with its own variables.
 *
 * @example
 * const settings = readSettings();
 * const client = await createMeteringClient({ settings });
 */
export function readSettings(env: Env = process.env): Settings {
  const tryTimeout = Number(env.METERING_HTTP_TRY_TIMEOUT_MS);
  const settings: Settings = {
    cloudShell: env.AZURE_HTTP_USER_AGENT?.startsWith("cloud-shell/") === true,
    meteringApiBaseUrl: (_nonEmpty(env.METERING_API_BASE_URL) ?? DEFAULT_METERING_API_BASE_URL).replace(/\/+$/, ""),
    httpTryTimeoutMs: Number.isFinite(tryTimeout) && tryTimeout > 0 ? tryTimeout : DEFAULT_TRY_TIMEOUT_MS,
    authorityHost: (_nonEmpty(env.AZURE_AUTHORITY_HOST) ?? DEFAULT_AUTHORITY_HOST).replace(/\/+$/, ""),
    disableInstanceDiscovery: _flag(env.METERING_DISABLE_INSTANCE_DISCOVERY),
    keyVaultDisableChallengeVerification: _flag(env.METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION),
    assertionPerIdentity: _flag(env.METERING_ASSERTION_PER_IDENTITY),
    tokenCredentials: (env.AZURE_TOKEN_CREDENTIALS ?? "").trim().toLowerCase(),
  };
  const optional: Partial<Settings> = {
    dataDir: _nonEmpty(env.METERING_DATA_DIR),
    home: _nonEmpty(env.HOME),
    managedIdentityClientId: _nonEmpty(env.AZURE_CLIENT_ID),
    managedIdentitySource: _managedIdentitySource(env),
    rotationNow: _nonEmpty(env.METERING_ROTATION_NOW),
    ledger: _nonEmpty(env.METERING_LEDGER),
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (settings as unknown as Record<string, unknown>)[k] = v;
  return settings;
}
