// The publisher context: the one place that wires the publisher's identity to its clients.
// Settings → data paths → config.json → the ISV credential → the one Key Vault signer (the key
// signingKeyOf names) → one federated token source (a propagation retry for connections made
// minutes ago) → each customer's session → the metering and REST clients → the audit log. Every
// script and the doctor get their clients here and construct none themselves; `close()` ends
// them. Everything is created on first use, so `--help` and bad input cost no import and no
// sign-in. The ledger (the audit log) is the store config names: audit.jsonl, or append blobs.
import { type LedgerSpec, type LedgerStore, openLedgerStore, parseLedgerSpec } from "../audit/store.mts";
import { ConfigMissingError, MeteringError } from "../core/errors.mts";
import { readSettings, type Settings } from "../core/settings.mts";
import { auditPathIn, configPathIn, resolveDataDir } from "../state/paths.mts";
import { getCustomer, loadConfig, signingKeyOf, updateConfig, type ConfigStage, type CustomerConfig, type MeteringConfig } from "../state/config.mts";
import { customerIdentity, type CustomerSession } from "../customers/session.mts";
import type { CustomerRef } from "../state/customers.mts";
import type { AuditWriter } from "../audit/log.mts";
import type { Exchange, ExchangeRecorder } from "../audit/records.mts";
import type { CredentialFactory, FederatedIdentity, FederatedToken, FederatedTokenSource } from "../identity/federation.mts";
import type { PublisherAppConfig } from "./app.mts";
import type { Signer } from "../identity/signer.mts";
import type { MeteringClient, UsageReportClient } from "../metering/api.mts";
import type { RestClient } from "../azure/rest.mts";
import type { TokenCredential } from "@azure/identity";

/**
 * A federated credential takes minutes to reach Entra; its "no matching federated credential"
 * errors are retried only this long after 1-connect-customer, so a real misconfiguration still
 * fails fast.
 */
const FRESH_CONNECTION_MS = 15 * 60_000;


export interface OpenPublisherOptions {
  /** Default readSettings() (the process environment). */
  settings?: Settings;
  /** What config.json must hold (lib/state/config.mts ConfigStage); `none`: do not read it. Default `idp`. */
  stage?: ConfigStage | "none";
  /** With `stage`: a missing config.json is an empty one (commands that also work before setup). */
  allowMissingConfig?: boolean;
  /** Working directory a relative METERING_DATA_DIR resolves against. */
  cwd?: string;
  /** The ISV credential, when the caller has one (tests); default DefaultAzureCredential with the managed identity fallback. */
  credential?: TokenCredential;
  /** Replaces ClientAssertionCredential for token exchanges (tests). */
  createCredential?: CredentialFactory;
  /**
   * Retry Entra's "no matching federated credential" answers for connections made within
   * FRESH_CONNECTION_MS (default true). The doctor turns it off: it reports, it does not wait.
   */
  propagationRetry?: boolean;
  /** Told before each propagation retry of a fresh connection's token request. */
  onPropagationRetry?: (info: { clientId: string; aadsts: number; retryAfterInMs: number }) => void;
}

export interface Publisher {
  readonly settings: Settings;
  readonly paths: { dataDir: string; configPath: string; auditPath: string };
  /**
   * The ledger's store: audit.jsonl in the data directory, or append blobs in Azure Storage
   * (METERING_LEDGER, else config.json publisher.ledger), reached with the ISV credential.
   */
  ledger(): Promise<LedgerStore>;
  /** What the ledger's configuration names (its kind, and for blobs the container and shards). */
  readonly ledgerSpec: LedgerSpec;
  /** config.json as read when the context opened (empty with `stage: "none"`). */
  readonly config: MeteringConfig;
  /**
   * Read-modify-write of config.json under its lock. With a blob ledger that keeps a copy of
   * it (`0-ledger push-config`, which the job's replicas read), the copy follows under the
   * same lock, so a customer connected here is one the next replica bills. `copied`: the copy
   * was rewritten. A copy that cannot be written fails the call after the local file was
   * saved, saying to push it.
   */
  updateConfig(update: (config: MeteringConfig) => MeteringConfig | Promise<MeteringConfig>): Promise<{ config: MeteringConfig; changed: boolean; copied: boolean }>;
  /** A connected customer's checked entry; CustomerNotConnectedError (exit 2) with how to connect it. */
  customer(ref: CustomerRef): CustomerConfig;
  /** The ISV's own credential (az login, or a managed identity). */
  credential(): Promise<TokenCredential>;
  /** The signer of the key config.json says signs (publisher.idp). */
  signer(): Promise<Signer>;
  /** A signer for one Key Vault key version (setup and rotation verify a key before it signs). */
  signerFor(key: { keyId: string; kid: string }): Promise<Signer>;
  /**
   * Tokens of a connected customer's UAMI: one assertion per identity, cached by MSAL per scope.
   * `customer` is its entry when the caller has it already (else it is looked up).
   */
  session(ref: CustomerRef, customer?: CustomerConfig): CustomerSession;
  /**
   * Forgets a customer's session and its credential (MSAL's application and token cache): the
   * next session of that customer starts afresh (one token exchange more). A run ends each
   * customer's once its batches are done, so 4,000 customers do not keep 4,000 credentials.
   */
  endSession(ref: CustomerRef, customer?: CustomerConfig): void;
  /**
   * The identity a data-plane command acts as in a customer's managed resource group: the
   * customer's UAMI (federated, the default), or with `via: "list-tokens"` the managed
   * application's system-assigned identity (a token from its listTokens action, for `audience`).
   * `who` names it in messages; `tokenClaims` go into every audit record of the command.
   */
  dataPlaneIdentity(ref: CustomerRef, o: { scope: string; via: "uami" | "list-tokens"; audience: string; onProgress?: (text: string) => void }): Promise<{
    credential: TokenCredential;
    tokenClaims: Record<string, unknown>;
    who: string;
  }>;
  /**
   * The publisher's Entra app (`app`, default config's publisher.app): tokens in the ISV tenant
   * through the same issuer, signer and token source as the customers' UAMIs. ConfigMissingError
   * (exit 2) when config has no publisher.app.
   */
  publisherApp(app?: PublisherAppConfig): PublisherAppSession;
  /** How many assertions this context signed (each one is a Key Vault call). */
  readonly assertionsSigned: number;
  /** The metering API client (one pipeline, connections reused). */
  meteringClient(): Promise<MeteringClient & UsageReportClient>;
  /**
   * A data-plane REST client authenticated as `credential` for `scope`; every call it makes is
   * written to the audit log as an exchange record (redacted) by its pipeline's audit policy.
   */
  restClient(options: { credential: TokenCredential; scope: string; record: ExchangeContext }): Promise<RestClient>;
  /** Writes exchanges made outside our pipelines to the audit log. */
  recorder(context: ExchangeContext): ExchangeRecorder;
  /** Options for ARM calls through az rest (lib/azure) whose exchanges go to the audit log. */
  arm(context: ExchangeContext): { record: ExchangeRecorder };
  /** The audit log, opened for appending on first use. */
  audit(): Promise<AuditWriter>;
  close(): Promise<void>;
}

/** The publisher app as a token source (scope default: the metering API). */
export interface PublisherAppSession {
  readonly identity: FederatedIdentity;
  readonly app: PublisherAppConfig;
  getToken(scope?: string): Promise<FederatedToken>;
}

/** What every exchange record of one command carries besides the request and the answer. */
export interface ExchangeContext {
  customer?: CustomerRef;
  /** How the identity was obtained, when not the customer's UAMI (e.g. `list-tokens`). */
  via?: string;
  /** Claims of the token used (decoded, unsigned). */
  tokenClaims?: Record<string, unknown>;
}

/** Writes the blob ledger's copy of config.json into the data directory when that has none. */
async function _fetchSharedConfig(spec: LedgerSpec, paths: { dataDir: string; configPath: string; auditPath: string }, credential: () => Promise<TokenCredential>, settings: Settings): Promise<void> {
  if (spec.kind !== "blob") return;
  const { access, mkdir, writeFile } = await import("node:fs/promises");
  if (await access(paths.configPath).then(() => true, () => false)) return;
  const store = await openLedgerStore(spec, { ...paths, credential, tryTimeoutMs: settings.httpTryTimeoutMs });
  const text = await store.sharedConfig?.get();
  if (text === undefined) return;
  await mkdir(paths.dataDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.configPath, text, { mode: 0o600, flag: "wx" }).catch((error) => {
    // Another process of this data directory wrote it first: the same copy.
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  });
}

/**
 * Opens the publisher context of a data directory.
 *
 * @example
 * const publisher = await openPublisher();
 * try {
 *   const session = publisher.session(publisher.customer({ subscriptionId, managedResourceGroup }));
 *   const { token } = await session.getToken("https://vault.azure.net/.default");
 * } finally {
 *   await publisher.close();
 * }
 */
export async function openPublisher(options: OpenPublisherOptions = {}): Promise<Publisher> {
  const settings = options.settings ?? readSettings();
  const dataDir = resolveDataDir(settings, options.cwd ? { cwd: options.cwd } : {});
  const paths = { dataDir, configPath: configPathIn(dataDir), auditPath: auditPathIn(dataDir) };
  const stage = options.stage ?? "idp";
  let config: MeteringConfig;
  let credential: Promise<TokenCredential> | undefined = options.credential ? Promise.resolve(options.credential) : undefined;
  const getCredential = () => (credential ??= import("../identity/isv-credential.mts").then((m) => m.createIsvCredential({ settings })));
  // A runner with no config.json of its own (a job's replica) and a blob ledger named by
  // METERING_LEDGER takes the copy `0-ledger push-config` keeps beside the ledger.
  if (stage !== "none" && settings.ledger !== undefined) await _fetchSharedConfig(parseLedgerSpec(settings.ledger, "METERING_LEDGER"), paths, getCredential, settings);
  if (stage === "none") config = { publisher: {}, customers: {} } as MeteringConfig;
  else config = await loadConfig({ path: paths.configPath, stage, ...(options.allowMissingConfig ? { allowMissing: true } : {}) });

  const signers = new Map<string, Promise<Signer>>();
  let tokenSource: Promise<FederatedTokenSource> | undefined;
  let metering: Promise<MeteringClient & UsageReportClient> | undefined;
  let writer: Promise<AuditWriter> | undefined;
  // Client ids of connections made minutes ago: their token requests get the propagation retry.
  const fresh = new Set<string>();
  const sessions = new Map<string, CustomerSession>();
  const sessionKey = (identity: FederatedIdentity) => JSON.stringify([identity.tenantId, identity.clientId, identity.subject, identity.audience]);

  // A failed creation is not cached: the doctor reports it, and a later call may succeed.
  const once = <T,>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> => {
    let p = cache.get(key);
    if (!p) {
      p = make();
      cache.set(key, p);
      p.catch(() => cache.get(key) === p && cache.delete(key));
    }
    return p;
  };
  const signerFor = (key: { keyId: string; kid: string }) =>
    once(signers, `${key.keyId} ${key.kid}`, async () => {
      const { createKeyVaultSigner } = await import("../identity/signer.mts");
      return createKeyVaultSigner({ ...key, credential: await getCredential(), settings });
    });
  const idpOf = () => {
    const idp = config.publisher.idp;
    if (!idp) throw new ConfigMissingError(`Cannot sign as the publisher: ${paths.configPath} has no publisher.idp (run 0-isv-setup first)`, { path: paths.configPath });
    return idp;
  };
  const getSigner = () => signerFor(signingKeyOf(idpOf()));
  const getTokenSource = () => (tokenSource ??= (async () => {
    const { createFederatedTokenSource } = await import("../identity/federation.mts");
    const { sdkClientOptions } = await import("../core/http.mts");
    return createFederatedTokenSource({
      issuer: idpOf().issuer,
      signer: await getSigner(),
      settings,
      ...(options.createCredential ? { createCredential: options.createCredential } : {}),
      credentialOptions: (identity: FederatedIdentity) => sdkClientOptions({
        settings,
        propagation: fresh.has(identity.clientId)
          ? { onRetry: ({ aadsts, retryAfterInMs }) => options.onPropagationRetry?.({ clientId: identity.clientId, aadsts, retryAfterInMs }) }
          : undefined,
      }),
    });
  })());
  const ledgerSpec = settings.ledger !== undefined
    ? parseLedgerSpec(settings.ledger, "METERING_LEDGER")
    : parseLedgerSpec(config.publisher.ledger, `${paths.configPath} publisher.ledger`);
  let store: Promise<LedgerStore> | undefined;
  const getLedger = () => (store ??= openLedgerStore(ledgerSpec, { ...paths, credential: getCredential, tryTimeoutMs: settings.httpTryTimeoutMs }));
  const getAudit = () => (writer ??= getLedger().then((l) => l.createWriter()));
  const recorder = (context: ExchangeContext): ExchangeRecorder => async (exchange: Exchange) => {
    const { exchangeRecord } = await import("../audit/records.mts");
    await (await getAudit()).append(exchangeRecord({ ...context, ...exchange }));
  };

  const updateSharedConfig: Publisher["updateConfig"] = async (update) => {
    let copied = false;
    const afterSave = ledgerSpec.kind !== "blob" ? undefined : async (text: string) => {
      const shared = (await getLedger()).sharedConfig;
      try {
        const copy = await shared?.get();
        // Only a copy someone pushed is kept current; none is pushed unasked.
        if (copy === undefined || copy === text) return;
        await shared!.put(text);
        copied = true;
      } catch (error) {
        throw new MeteringError(`Saved ${paths.configPath}, but its copy beside the ledger could not be updated (${String((error as Error).message ?? error).split("\n")[0]}): run 0-ledger push-config`, { cause: error });
      }
    };
    const result = await updateConfig({ path: paths.configPath, update, ...(afterSave ? { afterSave } : {}) });
    return { ...result, copied };
  };

  let tokenSourceValue: FederatedTokenSource | undefined;
  const publisher: Publisher = {
    settings,
    paths,
    ledger: getLedger,
    ledgerSpec,
    config,
    updateConfig: updateSharedConfig,
    customer: (ref) => getCustomer(config, { ...ref, path: paths.configPath }),
    credential: getCredential,
    signer: getSigner,
    signerFor,
    get assertionsSigned() {
      return tokenSourceValue?.assertionsSigned ?? 0;
    },
    session(ref, entry) {
      const customer = entry ?? getCustomer(config, { ...ref, path: paths.configPath });
      const identity = customerIdentity(customer);
      const key = sessionKey(identity);
      let session = sessions.get(key);
      if (session) return session;
      const isFresh = Date.now() - Date.parse(String(customer.connectedAt ?? "")) < FRESH_CONNECTION_MS;
      if (isFresh && options.propagationRetry !== false) fresh.add(customer.uamiClientId);
      const getToken = async (scope?: string) => {
        const source = tokenSourceValue ??= await getTokenSource();
        return source.getToken({ ...identity, ...(scope ? { scope } : {}) });
      };
      session = {
        identity,
        getToken,
        async issueToken(scope) {
          const t = await getToken(scope);
          // The exchange as a person reads it: no assertion, no token, only the claims.
          await recorder({ customer: { subscriptionId: ref.subscriptionId, managedResourceGroup: ref.managedResourceGroup }, tokenClaims: t.claims })({
            operation: "token",
            request: { method: "POST", url: `${settings.authorityHost}/${identity.tenantId}/oauth2/v2.0/token`, body: { scope, client_id: identity.clientId } },
          });
          return t;
        },
        credential: {
          async getToken(scopes: string | string[]) {
            const t = await getToken(Array.isArray(scopes) ? scopes[0] : scopes);
            return { token: t.token, expiresOnTimestamp: t.expiresOnTimestamp };
          },
        },
      };
      sessions.set(key, session);
      return session;
    },
    endSession(ref, entry) {
      const customer = entry ?? getCustomer(config, { ...ref, path: paths.configPath });
      if (customer.billingOnly === true) return;
      const identity = customerIdentity(customer);
      sessions.delete(sessionKey(identity));
      tokenSourceValue?.forget(identity);
    },
    publisherApp(given) {
      const app = given ?? config.publisher.app as PublisherAppConfig | undefined;
      if (!app?.appId) {
        throw new ConfigMissingError(`Cannot sign in as the publisher app: ${paths.configPath} has no publisher.app (run 0-publisher-app first)`, { path: paths.configPath });
      }
      const identity: FederatedIdentity = { kind: "publisher-app", tenantId: app.tenantId, clientId: app.appId, subject: app.subject, audience: app.audience };
      // A credential added minutes ago may be refused until Entra has it everywhere.
      const isFresh = Date.now() - Date.parse(String(app.ficCreatedAt ?? "")) < FRESH_CONNECTION_MS;
      if (isFresh && options.propagationRetry !== false) fresh.add(app.appId);
      return {
        identity,
        app,
        async getToken(scope?: string) {
          const source = tokenSourceValue ??= await getTokenSource();
          return source.getToken({ ...identity, ...(scope ? { scope } : {}) });
        },
      };
    },
    async dataPlaneIdentity(ref, o) {
      if (o.via === "list-tokens") {
        const { managedAppIdentityToken } = await import("../azure/managed-app.mts");
        const { summarizeToken } = await import("../identity/token-info.mts");
        const { staticTokenCredential } = await import("../customers/session.mts");
        o.onProgress?.(`Getting a token of the managed application's system-assigned identity for ${o.audience} (listTokens)`);
        const { token, principalId } = await managedAppIdentityToken({ ...ref, audience: o.audience });
        return {
          credential: staticTokenCredential(token.token, token.expiresOnTimestamp),
          tokenClaims: summarizeToken(token.token).claims,
          who: `The managed application's system-assigned identity (principal ${principalId ?? "?"})`,
        };
      }
      const customer = getCustomer(config, { ...ref, path: paths.configPath });
      o.onProgress?.(`Signing in as UAMI ${customer.uamiClientId} in tenant ${customer.tenantId}`);
      const session = publisher.session(ref, customer);
      const t = await session.getToken(o.scope);
      return {
        credential: session.credential,
        tokenClaims: t.claims,
        who: `The customer's UAMI ${customer.uamiName} (principal ${String(customer.uamiPrincipalId ?? t.claims.oid ?? "?")})`,
      };
    },
    meteringClient: () => (metering ??= import("../metering/api.mts").then((m) => m.createMeteringClient({ settings }))),
    async restClient({ credential: restCredential, scope, record }) {
      const { createRestClient } = await import("../azure/rest.mts");
      const { auditPolicy } = await import("../audit/policy.mts");
      return createRestClient({ credential: restCredential, scope, settings, policies: [{ policy: auditPolicy(recorder(record)), position: "perCall" }] });
    },
    recorder,
    arm: (context) => ({ record: recorder(context) }),
    audit: getAudit,
    async close() {
      const w = writer;
      writer = undefined;
      if (w) await (await w.catch(() => undefined))?.close();
    },
  };
  return publisher;
}

/** Opens the publisher context, runs `fn` with it, and closes it whatever happens. */
export async function usePublisher<T>(options: OpenPublisherOptions, fn: (publisher: Publisher) => Promise<T>): Promise<T> {
  const publisher = await openPublisher(options);
  try {
    return await fn(publisher);
  } finally {
    await publisher.close();
  }
}
