// The doctor: checks every link of the trust chain the way Entra and the metering API will use
// it, and says for each broken one what to do. Publisher links first (config, credential, Key
// Vault key, issuer documents, a test assertion), then per customer (UAMI, federated credential,
// token exchange, managed app, dimensions). Returns findings; never prints, never throws for a
// broken link (only for bad input: a customer that is not in config).
import { createLocalJWKSet, importJWK, jwtVerify } from "jose";
import { buildClientAssertion, DEFAULT_AUDIENCE } from "../identity/assertion.mts";
import type { AuditRecord } from "../audit/log.mts";
import type { Ledger, LedgerEntry } from "../metering/ledger.mts";
import { loadLedger } from "../metering/submission.mts";
import { USAGE_WINDOW_MS } from "../metering/time.mts";
import { findCustomer, isSameCustomer } from "../state/customers.mts";
import { getManagedAppForResourceGroup, type ArmOptions } from "../azure/managed-apps.mts";
import {
  customerProblems, idpKeysOf, publishedKeysOf, repairHints, signingKeyOf, type CustomerConfig, type IdpConfig,
} from "../state/config.mts";
import { describeMismatch, dimensionVerdicts, formatAge, jwkProblems } from "./diagnose.mts";
import { explainInvalidDimension } from "../metering/status.mts";
import { CustomerNotConnectedError, MeteringError } from "../core/errors.mts";
import { getUserAssignedIdentity, listFederatedCredentials, userAssignedIdentityId, type FederatedCredential } from "../customers/uami.mts";
import { buildPublicJwk, DISCOVERY_PATH, fetchJsonDocument, JWKS_PATH, MAX_JWKS_KEYS, type FetchLike } from "../issuer/oidc.mts";
import { isLegacyKid } from "../issuer/rotation.mts";
import { getSignedInObjectId } from "../identity/isv-credential.mts";
import { getKeyVaultPublicKey } from "../identity/signing-key.mts";
import { openPublisher, type OpenPublisherOptions, type Publisher } from "../publisher/context.mts";
import { listPublisherAppCredentials, publisherAppProblems, type PublisherAppConfig } from "../publisher/app.mts";
import type { Signer } from "../identity/signer.mts";
import type { TokenCredential } from "@azure/identity";

export type CheckStatus = "ok" | "fail" | "skip";

export interface DoctorCheck {
  /** Stable id of the link: config, credential, key-exists, key-signs, key-matches-jwks, discovery, discovery-issuer, jwks, jwks-keys, test-assertion, publisher-app-fic, publisher-app-token, customer-config, uami, fic, token, managed-app, dimensions, unresolved. */
  id: string;
  /** `publisher`, or `<subscription>/<managed resource group>`. */
  target: string;
  title: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do; set for every failure. */
  fix?: string;
}

export interface DoctorOptions extends ArmOptions {
  /** How to open the publisher context (settings, and for tests a credential and a credential factory). */
  publisher?: Omit<OpenPublisherOptions, "stage" | "propagationRetry">;
  /** Check only this customer (else every customer in config). */
  customer?: { subscriptionId: string; managedResourceGroup: string };
  /** For the anonymous issuer fetches. */
  fetch?: FetchLike;
  now?: () => number;
  onProgress?: (text: string) => void;
}

/** Thrown inside a check: fails it with a fix. */
class _Broken extends Error {
  fix: string;
  constructor(detail: string, fix: string) {
    super(detail);
    this.fix = fix;
  }
}
const broken = (detail: string, fix: string): never => {
  throw new _Broken(detail, fix);
};

const TITLES: Record<string, string> = {
  config: "config.json complete and valid",
  credential: "ISV credential works",
  "key-exists": "Key Vault key exists",
  "key-signs": "Key Vault key can sign",
  "key-matches-jwks": "Key Vault key equals the JWKS entry",
  discovery: "discovery document reachable anonymously",
  "discovery-issuer": "discovery issuer equals the configured issuer",
  jwks: "JWKS reachable anonymously at jwks_uri",
  "jwks-keys": "JWKS keys complete",
  "test-assertion": "test assertion verifies against the JWKS",
  "customer-config": "customer entry complete",
  uami: "managed identity exists",
  fic: "federated credential matches exactly",
  token: "token exchange works",
  "managed-app": "managed app has billing details and a plan",
  dimensions: "dimensions in the audit log are known",
  "publisher-app-fic": "publisher app's federated credential matches exactly",
  "publisher-app-token": "publisher app's token exchange works",
  unresolved: "every usage event sent has a known fate",
};

/** Runs every check and returns the findings in order. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const log = options.onProgress ?? (() => {});
  const run = async <T,>(id: string, target: string, fn: () => { detail: string; value?: T } | Promise<{ detail: string; value?: T }>): Promise<T | undefined> => {
    log(`checking ${target}: ${TITLES[id]}`);
    try {
      const { detail, value } = await fn();
      checks.push({ id, target, title: TITLES[id], status: "ok", detail });
      return value ?? (true as T);
    } catch (error) {
      if (error instanceof _Broken) checks.push({ id, target, title: TITLES[id], status: "fail", detail: error.message, fix: error.fix });
      else {
        const message = String((error as Error)?.message ?? error).split("\n")[0];
        checks.push({ id, target, title: TITLES[id], status: "fail", detail: message, fix: (error as MeteringError)?.detail ?? "see the detail; run again with --verbose" });
      }
      return undefined;
    }
  };
  const skip = (id: string, target: string, why: string) => checks.push({ id, target, title: TITLES[id], status: "skip", detail: why });

  // ---- config: opening the publisher context reads and checks it. The doctor reports, it
  // does not wait: no propagation retry for fresh connections.
  const publisher = await run<Publisher>("config", "publisher", async () => {
    try {
      const p = await openPublisher({ ...options.publisher, stage: "idp", propagationRetry: false });
      return { detail: `${p.paths.configPath}: publisher, issuer and ${idpKeysOf(p.config.publisher.idp!).length} signing key(s) recorded`, value: p };
    } catch (error) {
      const e = error as MeteringError & { problems?: string[] };
      const fix = e.code === "ERR_CONFIG_MISSING"
        ? "run 0-add-defaults, then 0-isv-setup"
        : Array.isArray(e.problems) && e.problems.length
        ? `${repairHints(e.problems).join("; ")} (the script that writes the named keys)`
        : "fix the named keys";
      return broken(e.message, fix);
    }
  });
  if (!publisher) return checks;
  try {
    await _runChecks(publisher, options, { run, skip });
  } finally {
    await publisher.close();
  }
  return checks;
}

async function _runChecks(publisher: Publisher, options: DoctorOptions, { run, skip }: { run: Run; skip: (id: string, target: string, why: string) => void }): Promise<void> {
  const { config } = publisher;
  if (options.customer && !findCustomer(config, options.customer)) {
    throw new CustomerNotConnectedError(
      `Cannot check customer ${options.customer.subscriptionId}/${options.customer.managedResourceGroup}: it is not in ${publisher.paths.configPath} (run 1-connect-customer first, or doctor without arguments)`,
    );
  }
  const idp = config.publisher.idp!;
  const issuer = idp.issuer;
  const active = signingKeyOf(idp);

  // ---- the ISV credential
  let credential: TokenCredential | undefined;
  const signedIn = await run<string>("credential", "publisher", async () => {
    try {
      credential = await publisher.credential();
      const oid = await getSignedInObjectId({ credential });
      return { detail: `signed in as object id ${oid}`, value: oid };
    } catch (error) {
      return broken(String((error as Error).message).split("\n")[0], "sign in (az login, or a managed identity on Azure compute); AZURE_TOKEN_CREDENTIALS narrows the credential chain");
    }
  });

  // ---- the issuer documents, anonymously
  const fetchOptions = { fetch: options.fetch };
  const account = config.publisher.optional?.storageAccountName ?? "(publisher.optional.storageAccountName)";
  const anonymousFix = idp.issuerHost === "static-website"
    ? `the static website of storage account ${account} must be on and serve the $web container at ${issuer} (anonymous, whatever allowBlobPublicAccess says); 0-isv-setup --issuer-host static-website switches it on and republishes the documents. Entra answers AADSTS50166 until then`
    : `the container ${config.publisher.optional?.containerName ?? "(publisher.optional.containerName)"} of storage account ${account} must allow anonymous blob reads (container publicAccess Blob, account allowBlobPublicAccess true); 0-isv-setup deploys both and republishes the documents (or, where policy denies public blob access, 0-isv-setup --issuer-host static-website). Entra answers AADSTS50166 until then`;
  const discovery = await run<Record<string, unknown>>("discovery", "publisher", async () => {
    const url = `${issuer}/${DISCOVERY_PATH}`;
    let doc: unknown;
    try {
      doc = await fetchJsonDocument(url, fetchOptions);
    } catch (error) {
      return broken(String((error as Error).message), anonymousFix);
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return broken(`${url} is not a JSON object`, "run 0-isv-setup to republish it");
    return { detail: `GET ${url}: 200 without credentials`, value: doc as Record<string, unknown> };
  });
  if (discovery) {
    await run("discovery-issuer", "publisher", () => {
      const published = discovery.issuer;
      if (typeof published !== "string") return broken("the discovery document has no issuer", "run 0-isv-setup to republish it");
      const how = describeMismatch({ expected: issuer, actual: published });
      if (how) {
        return broken(
          `the discovery document's issuer ${JSON.stringify(published)} ${how} compared with publisher.idp.issuer ${JSON.stringify(issuer)}`,
          "Entra needs one identical string in the discovery document, the assertion's iss and every federated credential (no trailing slash, no whitespace, same case); run 0-isv-setup to republish the discovery document",
        );
      }
      return { detail: `"${published}" (exact)` };
    });
  } else skip("discovery-issuer", "publisher", "no discovery document");

  const expectedJwksUri = `${issuer}/${JWKS_PATH}`;
  const jwks = !discovery ? undefined : await run<{ keys: Record<string, unknown>[] }>("jwks", "publisher", async () => {
    const uri = discovery.jwks_uri;
    if (typeof uri !== "string") return broken("the discovery document has no jwks_uri", "run 0-isv-setup to republish it");
    if (uri !== expectedJwksUri) {
      return broken(`jwks_uri is ${JSON.stringify(uri)}, expected ${JSON.stringify(expectedJwksUri)} (${describeMismatch({ expected: expectedJwksUri, actual: uri })})`, "run 0-isv-setup to republish the discovery document");
    }
    let doc: unknown;
    try {
      doc = await fetchJsonDocument(uri, fetchOptions);
    } catch (error) {
      return broken(String((error as Error).message), anonymousFix);
    }
    const keys = (doc as { keys?: unknown })?.keys;
    if (!Array.isArray(keys)) return broken(`${uri} has no "keys" array`, "run 0-isv-setup to republish the JWKS");
    return { detail: `GET ${uri}: 200 without credentials, ${keys.length} key(s)`, value: { keys } };
  });
  if (!discovery) skip("jwks", "publisher", "no discovery document");

  if (jwks) {
    await run("jwks-keys", "publisher", () => {
      const problems: string[] = [];
      jwks.keys.forEach((k, i) => {
        const p = jwkProblems(k);
        if (p.length) problems.push(`key ${i} (kid ${JSON.stringify(k?.kid ?? null)}): ${p.join(", ")}`);
      });
      if (jwks.keys.length > MAX_JWKS_KEYS) problems.push(`${jwks.keys.length} keys: Entra reads only the first ${MAX_JWKS_KEYS}`);
      const served = new Set(jwks.keys.map((k) => k?.kid));
      const missing = publishedKeysOf(idp).filter((k) => !served.has(k.kid));
      for (const k of missing) {
        problems.push(k.state === "active"
          ? `the signing key's kid ${k.kid} is missing: Entra answers AADSTS7000272`
          : `published key ${k.kid} (waiting for rotation phase 2) is missing`);
      }
      if (problems.length) return broken(problems.join("; "), "run 0-isv-setup to republish the JWKS from publisher.idp.keys");
      return { detail: `${jwks.keys.length} key(s) with kty, use, alg, kid, n, e; the signing kid ${active.kid} is published` };
    });
  } else skip("jwks-keys", "publisher", "no JWKS");

  // ---- the Key Vault key (needs the credential)
  let signer: Signer | undefined;
  if (signedIn && credential) {
    const cred = credential;
    const kvJwk = await run<Awaited<ReturnType<typeof buildPublicJwk>>>("key-exists", "publisher", async () => {
      let key;
      try {
        key = await getKeyVaultPublicKey({ keyId: active.keyId, credential: cred, settings: publisher.settings });
      } catch (error) {
        const status = _statusOf(error);
        const fix = status === 404
          ? `the key version is gone (deleted): recover it (az keyvault key recover --id ${idp.keyUri}) or, if it was purged, set up a new key with 0-isv-setup and reconnect customers if the issuer changed`
          : status === 403
          ? "the version may be disabled (enable it again: az keyvault key set-attributes --enabled true), or you lack Key Vault Crypto User/Officer on the vault"
          : "check the vault and your access to it";
        return broken(String((error as Error).message), fix);
      }
      if (!key.keyOps.includes("sign")) return broken(`key ${key.keyId} allows ${JSON.stringify(key.keyOps)}, not sign`, "create a key with key_ops sign (0-isv-setup --rotate-key creates one)");
      const jwk = await buildPublicJwk(key);
      if (isLegacyKid(active.kid)) {
        // The bash tool's kid (the versioned key URL) names the key it signs with; a migration moves off it.
        return { detail: `${key.keyId} (kid ${active.kid}, the bash tool's; run 0-isv-setup to migrate to the thumbprint kid ${jwk.kid} without a gap)`, value: { ...jwk, kid: active.kid } };
      }
      if (jwk.kid !== active.kid) {
        return broken(`config says the signing key ${active.keyId} has kid ${active.kid}, but its public key's thumbprint is ${jwk.kid}`, "config.json is stale: run 0-isv-setup to record and publish the key again");
      }
      return { detail: `${key.keyId} (kid ${jwk.kid})`, value: jwk };
    });
    signer = await run<Signer>("key-signs", "publisher", async () => {
      if (!kvJwk) return broken("the key could not be read", "fix the key first (see above)");
      const s = await publisher.signer();
      const nowS = Math.floor((options.now ?? Date.now)() / 1000);
      const token = await buildClientAssertion({ issuer, subject: "metering-doctor-self-test", now: nowS * 1000, lifetimeS: 60, signer: s });
      try {
        await jwtVerify(token, await importJWK(kvJwk, "RS256"), { algorithms: ["RS256"], currentDate: new Date(nowS * 1000) });
      } catch (error) {
        return broken(`the vault's signature does not verify with the vault's own public key: ${(error as Error).message}`, "report this: the vault or a proxy alters signatures");
      }
      return { detail: `signed a test JWT with ${active.keyId}`, value: s };
    });
    if (jwks && kvJwk) {
      await run("key-matches-jwks", "publisher", () => {
        const entry = jwks.keys.find((k) => k?.kid === active.kid);
        if (!entry) return broken(`the JWKS has no key with the signing kid ${active.kid}: Entra answers AADSTS7000272`, "run 0-isv-setup to republish the JWKS (during a rotation: a key signs only after phase 2 of 0-isv-setup --rotate-key)");
        if (entry.n !== kvJwk.n || entry.e !== kvJwk.e) {
          return broken(`the JWKS entry for kid ${active.kid} holds another public key than ${active.keyId}: Entra answers AADSTS700027`, "run 0-isv-setup to republish the JWKS");
        }
        return { detail: `kid ${active.kid}: same n and e` };
      });
    } else skip("key-matches-jwks", "publisher", !jwks ? "no JWKS" : "no Key Vault key");
  } else {
    for (const id of ["key-exists", "key-signs", "key-matches-jwks"]) skip(id, "publisher", "no ISV credential");
  }

  // ---- a test assertion, verified locally against the published JWKS
  if (signer && jwks) {
    const s = signer;
    await run("test-assertion", "publisher", async () => {
      const nowMs = (options.now ?? Date.now)();
      const token = await buildClientAssertion({ issuer, subject: "metering-doctor-self-test", audience: DEFAULT_AUDIENCE, now: nowMs, lifetimeS: 60, signer: s });
      try {
        await jwtVerify(token, createLocalJWKSet(jwks as never), { issuer, audience: DEFAULT_AUDIENCE, algorithms: ["RS256"], currentDate: new Date(nowMs) });
      } catch (error) {
        return broken(`an assertion signed by ${active.keyId} (kid ${active.kid}) does not verify against the published JWKS: ${(error as Error).message}`, "run 0-isv-setup to republish the JWKS");
      }
      return { detail: `iss ${issuer}, kid ${active.kid}: signature and claims verify` };
    });
  } else skip("test-assertion", "publisher", !signer ? "the key cannot sign" : "no JWKS");

  // ---- the publisher app (central metering, reconciliation), checked like a customer's UAMI
  if (config.publisher.app !== undefined) await _checkPublisherApp({ publisher, app: config.publisher.app as PublisherAppConfig, issuer, signer, run, options });

  // ---- customers
  const customers: Array<{ subscriptionId: string; managedResourceGroup: string; entry: unknown }> = [];
  for (const [sub, groups] of Object.entries(config.customers)) {
    for (const [mrg, entry] of Object.entries(groups ?? {})) {
      const c = options.customer;
      if (c && !isSameCustomer({ subscriptionId: sub, managedResourceGroup: mrg }, c)) continue;
      customers.push({ subscriptionId: sub, managedResourceGroup: mrg, entry });
    }
  }
  // Read once for every customer: the whole log, keeping only events whose fate is not known.
  let ledger: Promise<Ledger> | undefined;
  const unresolvedLedger = () => (ledger ??= publisher.ledger().then((store) => loadLedger({ store, now: (options.now ?? Date.now)(), unresolved: true })).then((l) => l.ledger));
  for (const c of customers) await _checkCustomer({ ...c, idp, publisher, options, signer, run, skip, unresolvedLedger });
}

function _statusOf(error: unknown): number | undefined {
  for (let e = error as { statusCode?: number; cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i++) {
    if (typeof e.statusCode === "number") return e.statusCode;
  }
  return undefined;
}

type Run = <T>(id: string, target: string, fn: () => { detail: string; value?: T } | Promise<{ detail: string; value?: T }>) => Promise<T | undefined>;

/** How a federated credential differs from what config says, field by field; [] when it matches exactly. */
export function ficDifferences(fic: FederatedCredential, want: { issuer: string; subject: string; audience: string }): string[] {
  const out: string[] = [];
  const issuer = describeMismatch({ expected: want.issuer, actual: fic.issuer });
  if (issuer) out.push(`issuer ${JSON.stringify(fic.issuer)} ${issuer} (AADSTS700211)`);
  const audience = fic.audiences.length === 1 ? describeMismatch({ expected: want.audience, actual: fic.audiences[0] }) : "is not exactly one value";
  if (audience) out.push(`audience ${JSON.stringify(fic.audiences)} ${audience} (AADSTS700212)`);
  const subject = describeMismatch({ expected: want.subject, actual: fic.subject });
  if (subject) out.push(`subject ${JSON.stringify(fic.subject)} ${subject} (AADSTS${subject === "differs only in case" ? "7002138" : "700213"})`);
  return out;
}

async function _checkPublisherApp(o: { publisher: Publisher; app: PublisherAppConfig; issuer: string; signer: Signer | undefined; run: Run; options: DoctorOptions }): Promise<void> {
  const { app, issuer, run } = o;
  const rerun = `run 0-publisher-app --app-id ${app.appId} to add the credential as config.json says`;
  await run("publisher-app-fic", "publisher", async () => {
    const problems = publisherAppProblems(app);
    if (problems.length) return broken(`config.json publisher.app: ${problems.join(", ")}`, rerun);
    let fics;
    try {
      fics = await listPublisherAppCredentials({ objectId: app.objectId, ...(o.options.azRest ? { rest: o.options.azRest } : {}) });
    } catch (error) {
      return broken(String((error as Error).message).split("\n")[0], `the signed-in user must be able to read app ${app.appId} in tenant ${app.tenantId} (Microsoft Graph through az); ${rerun}`);
    }
    const want = { issuer, subject: app.subject, audience: app.audience };
    if (fics.length === 0) return broken(`app ${app.appId} has no federated credential (Entra answers AADSTS700211)`, rerun);
    const diffs = fics.map((f) => ({ f, d: ficDifferences(f, want) }));
    const exact = diffs.find((x) => x.d.length === 0);
    if (exact) return { detail: `${exact.f.name} on app ${app.appId}: issuer, subject and audience identical to config` };
    const closest = diffs.reduce((a, b) => (b.d.length < a.d.length ? b : a));
    return broken(
      `no federated credential of app ${app.appId} matches config exactly; closest ${JSON.stringify(closest.f.name)}: ${closest.d.join("; ")}`,
      `Entra compares issuer, subject and audience byte for byte; ${rerun}`,
    );
  });
  if (!o.signer) return;
  await run("publisher-app-token", "publisher", async () => {
    try {
      const token = await o.publisher.publisherApp(app).getToken();
      return { detail: `Entra issued a metering token for appid ${String(token.claims.appid ?? app.appId)} in tenant ${String(token.claims.tid ?? app.tenantId)}` };
    } catch (error) {
      const e = error as { message?: string; aadsts?: number };
      return broken(String(e.message), e.aadsts ? "see the AADSTS explanation above" : "check AZURE_AUTHORITY_HOST and the network to Entra");
    }
  });
}

async function _checkCustomer(o: {
  subscriptionId: string;
  managedResourceGroup: string;
  entry: unknown;
  idp: IdpConfig;
  publisher: Publisher;
  options: DoctorOptions;
  signer: Signer | undefined;
  run: Run;
  skip: (id: string, target: string, why: string) => void;
  unresolvedLedger: () => Promise<Ledger>;
}): Promise<void> {
  const { subscriptionId, managedResourceGroup, idp, options, run, skip } = o;
  const target = `${subscriptionId}/${managedResourceGroup}`;
  const reconnect = `run 1-connect-customer ${subscriptionId} ${managedResourceGroup} --force`;
  const arm = { azRest: options.azRest, command: options.command, env: options.env };
  const ok = await run("customer-config", target, () => {
    const problems = customerProblems(o.entry, `customers.${subscriptionId}.${managedResourceGroup}`);
    if (problems.length) return broken(problems.join("; "), reconnect);
    return { detail: o.entry && (o.entry as CustomerConfig).billingOnly === true ? "billing ids and plan recorded (billing only: billed as the publisher app)" : "UAMI, tenant, subject, audience, billing ids and plan recorded" };
  });
  if (!ok) {
    for (const id of ["uami", "fic", "token", "managed-app", "dimensions"]) skip(id, target, "incomplete customer entry");
    await _checkUnresolved({ ...o, target });
    return;
  }
  const customer = o.entry as CustomerConfig;
  const uamiId = typeof customer.uamiId === "string" && customer.uamiId
    ? customer.uamiId
    : userAssignedIdentityId({ subscriptionId, resourceGroup: managedResourceGroup, name: customer.uamiName });

  // Connected for billing only (1-connect-customer --billing-only): no identity in the MRG to check.
  const billingOnly = customer.billingOnly === true;
  const BILLING_ONLY = "connected for billing only: no UAMI; billed as the publisher app (2-emit-meter --as publisher-app)";
  if (billingOnly) skip("uami", target, BILLING_ONLY);
  const uami = billingOnly ? undefined : await run("uami", target, async () => {
    const found = await getUserAssignedIdentity({ id: uamiId, ...arm });
    if (!found) return broken(`${uamiId} does not exist (Entra answers AADSTS700016)`, reconnect);
    const stale: string[] = [];
    if (found.clientId.toLowerCase() !== customer.uamiClientId.toLowerCase()) stale.push(`its clientId is ${found.clientId}, config says ${customer.uamiClientId}`);
    if (found.tenantId && found.tenantId.toLowerCase() !== customer.tenantId.toLowerCase()) stale.push(`its tenant is ${found.tenantId}, config says ${customer.tenantId}`);
    if (stale.length) return broken(`config is stale: ${stale.join("; ")} (was the identity recreated?)`, reconnect);
    return { detail: `${found.name}, clientId ${found.clientId}` };
  });

  if (uami) {
    await run("fic", target, async () => {
      const fics = await listFederatedCredentials({ uamiId, ...arm });
      const want = { issuer: idp.issuer, subject: customer.subject, audience: customer.audience };
      if (fics.length === 0) return broken(`${customer.uamiName} has no federated credential (Entra answers AADSTS700211)`, reconnect);
      const diffs = fics.map((f) => ({ f, d: ficDifferences(f, want) }));
      const exact = diffs.find((x) => x.d.length === 0);
      if (exact) return { detail: `${exact.f.name}: issuer, subject and audience identical to config` };
      const closest = diffs.reduce((a, b) => (b.d.length < a.d.length ? b : a));
      return broken(
        `no federated credential matches config exactly; closest ${JSON.stringify(closest.f.name)}: ${closest.d.join("; ")}`,
        `Entra compares issuer, subject and audience byte for byte; ${reconnect} to write them as config.json says (issuer ${idp.issuer}, subject ${JSON.stringify(customer.subject)}, audience ${customer.audience})`,
      );
    });
  } else skip("fic", target, billingOnly ? BILLING_ONLY : "no managed identity");

  if (billingOnly) skip("token", target, BILLING_ONLY);
  else if (o.signer) {
    await run("token", target, async () => {
      try {
        const token = await o.publisher.session({ subscriptionId, managedResourceGroup }, customer).getToken();
        return { detail: `Entra issued a metering token for appid ${String(token.claims.appid ?? customer.uamiClientId)}` };
      } catch (error) {
        const e = error as { message?: string; aadsts?: number };
        // The message already carries the AADSTS explanation and fix (lib/identity/aadsts.mts).
        return broken(String(e.message), e.aadsts ? "see the AADSTS explanation above" : "check AZURE_AUTHORITY_HOST and the network to Entra");
      }
    });
  } else skip("token", target, "the Key Vault key cannot sign");

  await run("managed-app", target, async () => {
    const app = await getManagedAppForResourceGroup({ subscriptionId, managedResourceGroup, ...arm });
    const missing = [!app.resourceUsageId && "billingDetails.resourceUsageId", !app.planName && "plan"].filter(Boolean);
    if (missing.length) {
      return broken(`${app.id} has no ${missing.join(" and ")} (provisioningState ${app.provisioningState ?? "unknown"})`, "only Marketplace apps that finished provisioning can be metered; wait for provisioning or check the offer");
    }
    const stale: string[] = [];
    if (app.resourceUsageId!.toLowerCase() !== customer.billing.resourceId.toLowerCase()) stale.push(`resourceUsageId is ${app.resourceUsageId}, config billing.resourceId says ${customer.billing.resourceId}`);
    if (app.id.toLowerCase() !== customer.billing.resourceUri.toLowerCase()) stale.push(`the app is ${app.id}, config billing.resourceUri says ${customer.billing.resourceUri}`);
    if (app.planName !== customer.planName) stale.push(`the plan is ${JSON.stringify(app.planName)}, config planName says ${JSON.stringify(customer.planName)}`);
    if (stale.length) return broken(`config is stale: ${stale.join("; ")}`, `${reconnect} to record the app's current billing ids and plan`);
    return { detail: `plan ${app.planName}, resourceUsageId ${app.resourceUsageId}` };
  });

  await run("dimensions", target, async () => {
    // Only what can still be acted on: events for an hour inside the API's window (a corrected
    // event can still be sent), so an old typo ages out; records before it cannot hold such events.
    // This customer's answered requests are kept, and the intents they refer to (an outcome names
    // its request by the intent's id).
    const now = (o.options.now ?? Date.now)();
    const mine: AuditRecord[] = [];
    const who = { subscriptionId, managedResourceGroup };
    await (await o.publisher.ledger()).scan({
      sinceMs: now - USAGE_WINDOW_MS,
      onRecord: (r) => void ((r.response || r.operation.endsWith(".intent")) && isSameCustomer(r.customer, who) && mine.push(r)),
    });
    const verdicts = dimensionVerdicts(mine, who, { now, windowMs: USAGE_WINDOW_MS });
    if (verdicts.length === 0) return { detail: "no usage sent in the last 24 h" };
    const unknown = verdicts.filter((v) => v.invalid > 0);
    const age = (iso: string | undefined) => formatAge(now - Date.parse(iso ?? ""));
    if (unknown.length) {
      return broken(
        `the metering API refused ${unknown.map((v) => `${JSON.stringify(v.dimension)} (${v.invalid}x InvalidDimension, last ${age(v.lastInvalidAt)} ago${v.invalid > 1 ? `, first ${age(v.firstInvalidAt)} ago` : ""})`).join(", ")} for plan ${JSON.stringify(customer.planName)}`,
        `${explainInvalidDimension({ planName: customer.planName })}; send the hours again with the right id while they are inside the 24-hour window (this check turns green once they are past it or the dimension is accepted)`,
      );
    }
    return { detail: verdicts.filter((v) => v.accepted > 0).map((v) => `${v.dimension} (${v.accepted} accepted)`).join(", ") || "no accepted usage in the last 24 h" };
  });  await _checkUnresolved({ ...o, target });
}

/**
 * Usage events of this customer sent without a known fate. Inside the API's window the next
 * run sends them again (safe); past it, or after a resend the API refused, nobody can tell
 * from here whether they were billed, and they stay listed until reconciled.
 */
async function _checkUnresolved(o: { subscriptionId: string; managedResourceGroup: string; target: string; run: Run; options: DoctorOptions; unresolvedLedger: () => Promise<Ledger> }) {
  await o.run("unresolved", o.target, async () => {
    const who = { subscriptionId: o.subscriptionId, managedResourceGroup: o.managedResourceGroup };
    const now = (o.options.now ?? Date.now)();
    const mine = (await o.unresolvedLedger()).unresolved().filter((e) => isSameCustomer(e.customer, who));
    if (mine.length === 0) return { detail: "every event sent has a final answer" };
    const inWindow = (e: LedgerEntry) => now - Date.parse(e.event.effectiveStartTime) < USAGE_WINDOW_MS;
    const unknown = mine.filter((e) => e.state === "unknown" || !inWindow(e));
    const pending = mine.length - unknown.length;
    const pendingText = pending > 0 ? `${pending} event(s) sent without an answer; the next 2-emit-meter run sends them again (safe)` : "";
    if (unknown.length === 0) return { detail: pendingText };
    const list = unknown.slice(0, 5).map((e) => `${e.event.quantity} ${e.event.dimension} for ${e.event.effectiveStartTime} (sent ${e.sentAt ?? e.time}${e.state === "unknown" ? `, resend refused: ${e.status}` : ""})`);
    return broken(
      `${unknown.length} event(s) sent without an answer can no longer be settled by a resend; they may have been billed: ${list.join("; ")}${unknown.length > 5 ? "; …" : ""}${pendingText ? `; ${pendingText}` : ""}`,
      "check these hours in Partner Center (or the API's usage records) before billing them again; 2-emit-meter.mts --resend lists them all",
    );
  });
}
