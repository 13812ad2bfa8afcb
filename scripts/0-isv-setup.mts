#!/usr/bin/env node
// Sets up the ISV's OIDC issuer: deploys storage and Key Vault (templates/0-isv-setup.bicep),
// publishes the discovery document and JWKS, proves them; --rotate-key rotates the signing key.
import { fileURLToPath } from "node:url";
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import {
  configProblems, idpKeysOf, ISSUER_HOSTS, withPublisher, type IdpConfig, type IdpKey, type IssuerHost, type MeteringConfig,
} from "../lib/state/config.mts";
import type { Publisher } from "../lib/publisher/context.mts";
import type { ChangeRecord } from "../lib/audit/records.mts";
import { MeteringError, UsageError } from "../lib/core/errors.mts";
import { lineWriters, renderFields, renderTable, widthOf } from "../lib/cli/output.mts";

const TEMPLATE_FILE = fileURLToPath(new URL("../templates/0-isv-setup.bicep", import.meta.url));
const DEPLOYMENT_NAME = "metering-isv-setup";
const REQUIRED_OUTPUTS = ["storageAccountName", "containerName", "blobEndpoint", "keyVaultName", "keyVaultUri", "keyUri", "keyUriWithVersion"];
// New role assignments take minutes to reach the data planes (Key Vault, Blob).
const RBAC_RETRY = { attempts: 8, delayMs: 5_000, maxDelayMs: 30_000 };

const USAGE = `Usage: 0-isv-setup.mts [options]

Creates the publisher's resource group (from config.json, see 0-add-defaults), deploys
templates/0-isv-setup.bicep there (public-read blob container, Key Vault with an RSA
sign-only key, Key Vault Crypto Officer for you), publishes the issuer's
.well-known/openid-configuration and .well-known/jwks.json, then verifies both anonymously
with a test JWT signed by the Key Vault key. Records publisher.idp in config.json.
Running it again changes nothing (it republishes every key the rotation state publishes).

The storage account, container and vault named in publisher.optional are kept (so a config the
bash tool wrote keeps its issuer).

--ledger blob also creates a private blob container for the shared ledger (the audit log) in the
same storage account, gives you Storage Blob Data Contributor on that container alone, and
records it as publisher.ledger in config.json, so every later run reads and writes the ledger
there with your credential (no account key). A publisher.ledger that names another blob ledger
is refused (nothing changed); one that names this container is kept as it is (prefix, shards).
The records of a local audit.jsonl stay there: setup says when to run 0-ledger import. The
default, --ledger file, leaves publisher.ledger as it is.

--issuer-host static-website serves the documents from the storage account's static website
(the $web container, read anonymously whatever allowBlobPublicAccess says, for tenants whose
Azure Policy denies public blob access): the issuer is the website endpoint. The default, and
what a setup that has one keeps, is blob (a public-read container). Changing the host changes
the issuer: connected customers then need 1-connect-customer --force.

On a config the bash tool wrote (its key's kid is the versioned Key Vault key URL), setup starts
a migration to the RFC 7638 thumbprint kid as the phases of a rotation (below): the new kid is
published beside the old one, which keeps signing; --rotate-key switches to it once
publisher.idp.jwksCacheSeconds have passed, and removes the old kid (and the bash tool's
jwks_uri/keys) after that, so no token exchange fails on a cached JWKS.

--rotate-key runs the next phase of a signing-key rotation; run it three times, minutes or
days apart. Each phase refuses to run early and says when it can:
  1  create a new key version in Key Vault; publish the JWKS with the old and the new key
  2  once the new key has been published for publisher.idp.jwksCacheSeconds (default 86400,
     Entra's JWKS cache), sign with the new key
  3  once publisher.idp.retireAfterSeconds (default 900: the longest assertion lifetime plus
     clock skew) have passed, remove the old key from the JWKS
Emissions keep working through every phase.

Options:
  --rotate-key   run the next key rotation phase (needs a finished setup)
  --issuer-host blob|static-website
                 where the issuer documents are served (default: the setup's, else blob)
  --ledger file|blob
                 blob: create the shared ledger's container and your role on it, and record
                 it in config.json (default file: publisher.ledger stays as it is)
  --ledger-container NAME
                 the ledger container with --ledger blob (default ledger; 3-63 lower-case
                 letters, digits and single hyphens)
  --json         print the resulting publisher.idp as JSON (0-ledger where --json prints the ledger)
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR, AZURE_TOKEN_CREDENTIALS, METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION,
  METERING_DISABLE_INSTANCE_DISCOVERY (see docs/internals.md); \`az\` must be on PATH and signed in
  METERING_ROTATION_NOW  ISO 8601 time that --rotate-key takes as now when checking waiting
                         times (rehearsals; setting it ahead skips a wait on your own risk)

Exit codes: 0 ok, 1 failed (or a rotation phase is not due yet: nothing changed),
            2 usage error or missing defaults (run 0-add-defaults)
`;

const OPTIONS = {
  json: { type: "boolean" }, "rotate-key": { type: "boolean" }, "issuer-host": { type: "string" }, ledger: { type: "string" }, "ledger-container": { type: "string" },
} as const;

const { out, progress } = lineWriters(process);

/** True when an error (or one of its causes) is an HTTP 403: typically a role not yet propagated. */
function isForbidden(error: unknown): boolean {
  for (let e = error as { statusCode?: number; cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i++) {
    if (e.statusCode === 403) return true;
  }
  return false;
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const hostFlag = values["issuer-host"] as string | undefined;
    if (hostFlag !== undefined && !(ISSUER_HOSTS as readonly string[]).includes(hostFlag)) {
      throw new UsageError(`Cannot use --issuer-host ${JSON.stringify(hostFlag)}: expected ${ISSUER_HOSTS.join(" or ")}`);
    }
    if (hostFlag !== undefined && values["rotate-key"]) throw new UsageError("Cannot use --issuer-host with --rotate-key: a rotation keeps the issuer");
    const ledgerFlag = values.ledger as string | undefined;
    const containerFlag = values["ledger-container"] as string | undefined;
    if (ledgerFlag !== undefined && ledgerFlag !== "file" && ledgerFlag !== "blob") throw new UsageError(`Cannot use --ledger ${JSON.stringify(ledgerFlag)}: expected file or blob`);
    if ((ledgerFlag !== undefined || containerFlag !== undefined) && values["rotate-key"]) throw new UsageError("Cannot use --ledger or --ledger-container with --rotate-key: a rotation changes only the signing key");
    if (containerFlag !== undefined && ledgerFlag !== "blob") throw new UsageError("Cannot use --ledger-container without --ledger blob: it names the container of a blob ledger");
    const { checkLedgerContainer, DEFAULT_LEDGER_CONTAINER } = await import("../lib/audit/ledger-setup.mts");
    const ledgerContainer = ledgerFlag === "blob" ? checkLedgerContainer({ container: containerFlag ?? DEFAULT_LEDGER_CONTAINER }) : undefined;
    const { usePublisher } = await import("../lib/publisher/context.mts");
    if (values["rotate-key"]) return await usePublisher({ stage: "idp" }, (publisher) => rotateKey(publisher, values.json === true));
    return await usePublisher({ stage: "defaults" }, (ctx) =>
      setup(ctx, { json: values.json === true, issuerHost: hostFlag as IssuerHost | undefined, ledgerContainer, keepLedger: ledgerFlag === "file" }));
  } });
}

/** A value of publisher.optional, or undefined when absent or empty (the bash template's ""). */
function _given(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

/**
 * Runs one change in Azure and writes its audit record (what, where, outcome) after it ended,
 * also when it failed; returns what the change returned.
 */
async function recorded<T>(ctx: Publisher, change: Omit<ChangeRecord, "outcome" | "error">, fn: () => Promise<T>): Promise<T> {
  const { changeRecord } = await import("../lib/audit/records.mts");
  const audit = await ctx.audit();
  try {
    const result = await fn();
    await audit.append(changeRecord({ ...change, outcome: "succeeded" }));
    return result;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    await audit.append(changeRecord({ ...change, outcome: "failed", error: { ...(e.code ? { code: e.code } : {}), message: String(e.message ?? error).split("\n")[0] } }));
    throw error;
  }
}

async function setup(ctx: Publisher, o: { json: boolean; issuerHost: IssuerHost | undefined; ledgerContainer: string | undefined; keepLedger: boolean }): Promise<number> {
  const { config, paths: { configPath: path } } = ctx;
  const publisher = config.publisher as Required<Pick<typeof config.publisher, "subscriptionId" | "resourceGroup" | "location">>;
  const issuerHost: IssuerHost = o.issuerHost ?? config.publisher.idp?.issuerHost ?? "blob";
  const ledgerLib = await import("../lib/audit/ledger-setup.mts");
  const { parseLedgerSpec } = await import("../lib/audit/store.mts");
  const ledgerBefore = parseLedgerSpec(config.publisher.ledger, `${path} publisher.ledger`);
  const rgId = `/subscriptions/${publisher.subscriptionId}/resourceGroups/${publisher.resourceGroup}`;
  const optional = config.publisher.optional ?? {};

  // Everything that can refuse --ledger blob does so before anything changes in Azure.
  if (o.ledgerContainer !== undefined) {
    // The template's default issuer container too: a static-website setup may have one from before.
    ledgerLib.checkLedgerContainer({ container: o.ledgerContainer, issuerContainers: ["public", ...(_given(optional.containerName) ? [optional.containerName as string] : [])] });
    if (ledgerBefore.kind === "blob") {
      const { storageBlobEndpoint } = await import("../lib/azure/arm-resource.mts");
      const account = _given(optional.storageAccountName);
      const blobEndpoint = account ? await storageBlobEndpoint({ subscriptionId: publisher.subscriptionId, resourceGroup: publisher.resourceGroup, name: account }) : undefined;
      ledgerLib.planLedgerConfig({ current: config.publisher.ledger, blobEndpoint, container: o.ledgerContainer, path });
    }
  } else if (o.keepLedger && ledgerBefore.kind === "blob") {
    progress(`Note: ${path} publisher.ledger stays the blob ledger ${ledgerBefore.blobEndpoint}${ledgerBefore.container}/${ledgerBefore.prefix}; setup does not move a ledger back (remove publisher.ledger to use audit.jsonl again)`);
  }

  const az = await import("../lib/azure/az.mts");
  const { getSignedInPrincipal } = await import("../lib/identity/isv-credential.mts");
  const { getKeyVaultPublicKey } = await import("../lib/identity/signing-key.mts");
  const issuerLib = await import("../lib/issuer/oidc.mts");
  const rotateLib = await import("../lib/issuer/rotate-key.mts");
  const { retry } = await import("../lib/core/retry.mts");
  const rbacRetry = {
    ...RBAC_RETRY,
    isRetryable: isForbidden,
    onRetry: ({ delayMs }: { delayMs: number }) => progress(`  access denied; a new role assignment may still be propagating, retrying in ${delayMs / 1000} s`),
  };

  const credential = await ctx.credential();
  const { objectId: userObjectId, principalType: userPrincipalType } = await getSignedInPrincipal({ credential });

  progress(`Resource group ${publisher.resourceGroup} in ${publisher.location}`);
  await recorded(ctx, { operation: "issuer.resourceGroup", targets: [rgId], detail: { location: publisher.location } },
    () => az.groupCreate({ subscriptionId: publisher.subscriptionId, name: publisher.resourceGroup, location: publisher.location }));

  // The names a config already holds (the bash tool's too) stay: another account is another issuer.
  const names = {
    storageAccountName: _given(optional.storageAccountName),
    keyVaultName: _given(optional.keyVaultName),
    ...(issuerHost === "blob" ? { containerName: _given(optional.containerName) } : {}),
  };
  // Azure refuses a second assignment of one role to one principal at one scope
  // (RoleAssignmentExists), and the bash tool named its Crypto Officer assignment otherwise:
  // the template takes over an existing one by its name.
  const cryptoOfficerAssignmentName = names.keyVaultName
    ? await existingAssignmentName(`${rgId}/providers/Microsoft.KeyVault/vaults/${names.keyVaultName}`, userObjectId, CRYPTO_OFFICER_ROLE_ID)
    : undefined;
  // The same for a data role on the ledger container made by hand (as the README once said to).
  const ledgerAssignmentName = o.ledgerContainer !== undefined && names.storageAccountName
    ? await existingAssignmentName(
      `${rgId}/providers/Microsoft.Storage/storageAccounts/${names.storageAccountName}/blobServices/default/containers/${o.ledgerContainer}`,
      userObjectId,
      (await import("../lib/azure/roles.mts")).BUILT_IN_ROLES["Storage Blob Data Contributor"],
    )
    : undefined;
  const ledgerParameters = o.ledgerContainer === undefined ? {} : { ledgerContainerName: o.ledgerContainer, ...(ledgerAssignmentName ? { ledgerAssignmentName } : {}) };
  progress(`Deploying ${DEPLOYMENT_NAME} (storage, Key Vault, signing key${o.ledgerContainer === undefined ? "" : `, ledger container ${o.ledgerContainer}`}; issuer host ${issuerHost}): a few minutes`);
  const deployment = await recorded(ctx, {
    operation: "issuer.deploy", targets: [`${rgId}/providers/Microsoft.Resources/deployments/${DEPLOYMENT_NAME}`],
    detail: { template: "templates/0-isv-setup.bicep", issuerHost, ...names, ...(o.ledgerContainer === undefined ? {} : { ledgerContainerName: o.ledgerContainer }) },
  }, () => az.deploymentGroupCreate({
    subscriptionId: publisher.subscriptionId,
    resourceGroup: publisher.resourceGroup,
    name: DEPLOYMENT_NAME,
    templateFile: TEMPLATE_FILE,
    parameters: { userObjectId, userPrincipalType, location: publisher.location, issuerHost, ...names, ...(cryptoOfficerAssignmentName ? { cryptoOfficerAssignmentName } : {}), ...ledgerParameters },
  }));
  const outputs = az.deploymentOutputs(deployment);
  const output = (name: string) => az.getDeploymentOutput(outputs, name);
  const required = [...REQUIRED_OUTPUTS, ...(issuerHost === "static-website" ? ["webEndpoint"] : []), ...(o.ledgerContainer === undefined ? [] : ["ledgerContainerName"])];
  const missing = required.filter((name) => typeof output(name) !== "string" || output(name) === "");
  if (missing.length > 0) {
    throw new MeteringError(`Cannot use deployment ${DEPLOYMENT_NAME}: outputs ${missing.join(", ")} are missing (is ${TEMPLATE_FILE} up to date?)`);
  }
  const blobEndpoint = output("blobEndpoint") as string;
  const containerName = output("containerName") as string;
  let issuer: string;
  if (issuerHost === "static-website") {
    const webEndpoint = output("webEndpoint") as string;
    progress(`Switching on the static website of ${output("storageAccountName")} (${webEndpoint})`);
    const { changed } = await retry(() => issuerLib.enableStaticWebsite({ blobEndpoint, credential }), rbacRetry);
    if (changed) {
      const { changeRecord } = await import("../lib/audit/records.mts");
      await (await ctx.audit()).append(changeRecord({
        operation: "issuer.staticWebsite", targets: [`${blobEndpoint.replace(/\/+$/, "")}/${issuerLib.STATIC_WEBSITE_CONTAINER}`], outcome: "succeeded", detail: { webEndpoint },
      }));
    }
    issuer = issuerLib.issuerFromWebEndpoint({ webEndpoint });
  } else {
    issuer = issuerLib.issuerFromBlobEndpoint({ blobEndpoint, containerName });
  }
  const before = config.publisher.idp?.issuer;
  if (before && before !== issuer && Object.keys(config.customers).length > 0) {
    progress(`Note: the issuer changes from ${before} to ${issuer}; connected customers' federated credentials name the old one: run 1-connect-customer --force for each`);
  }
  const hostFields: Partial<IdpConfig> = issuerHost === "static-website" ? { issuerHost, blobEndpoint } : { issuerHost };

  // A finished setup of the same key keeps its rotation state: the template's keyUriWithVersion
  // is the newest version, which during a rotation is not (yet) the signing key.
  const previous = rotationStateToKeep(config, output("keyUri") as string);
  const legacy = previous || before !== issuer ? undefined : legacyIdpToMigrate(config, output("keyUri") as string);
  let idp: IdpConfig;
  let migrated: { next: { number: number; dueAtMs: number } } | undefined;
  if (legacy) {
    const rotation = await import("../lib/issuer/rotation.mts");
    const step = rotation.nextRotationStep(legacy);
    progress(`${path} holds the bash tool's signing key id (${step.key!.kid}): migrating to the RFC 7638 thumbprint kid without a gap`);
    const nowMs = rotation.rotationNow(ctx.settings);
    const migrationConfig: MeteringConfig = { ...config, publisher: { ...config.publisher, optional: { ...optional, containerName }, idp: { ...legacy, ...hostFields } } };
    const result = await recordedPhase(ctx, step, () => retry(() => rotateLib.runRotationPhase({
      config: migrationConfig, step, nowMs, credential, signerFor: ctx.signerFor, settings: ctx.settings, onProgress: progress,
    }), rbacRetry));
    idp = { ...result.idp, issuer, keyUri: output("keyUri") as string, ...hostFields };
    migrated = { next: result.next };
  } else {
    let keys: IdpKey[];
    if (previous) {
      keys = idpKeysOf(previous);
      progress(`Keeping the signing keys of ${previous.keyUri} (${keys.filter((k) => k.state !== "retired").length} published)`);
    } else {
      progress(`Reading the public key ${output("keyUriWithVersion")}`);
      const key = await retry(() => getKeyVaultPublicKey({ keyId: output("keyUriWithVersion") as string, credential, settings: ctx.settings }), rbacRetry);
      if (!key.keyOps.includes("sign")) throw new MeteringError(`Cannot sign with key ${key.keyId}: its key_ops ${JSON.stringify(key.keyOps)} lack "sign"`);
      const jwk = await issuerLib.buildPublicJwk(key);
      const at = new Date().toISOString();
      keys = [{ kid: jwk.kid, keyId: key.keyId, state: "active", since: at, publishedAt: at, activatedAt: at, jwk: { ...jwk } }];
    }
    const active = keys.find((k) => k.state === "active")!;
    idp = { ...previous, issuer, keyUri: output("keyUri") as string, keyId: active.keyId, keyJson: { ...active.jwk }, keys, ...hostFields } as IdpConfig;
    const location = issuerHost === "static-website"
      ? { blobEndpoint, containerName: issuerLib.STATIC_WEBSITE_CONTAINER }
      : { blobEndpoint, containerName };
    const documents = rotateLib.issuerDocumentsOf(idp);

    progress(`Publishing the issuer documents of ${issuer}`);
    const blobUrl = (p: string) => `${blobEndpoint.replace(/\/+$/, "")}/${location.containerName}/${p}`;
    const published = await retry(() => issuerLib.publishIssuerDocuments({ ...location, credential, documents }), rbacRetry).catch(async (error) => {
      const { changeRecord } = await import("../lib/audit/records.mts");
      await (await ctx.audit()).append(changeRecord({
        operation: "issuer.publish", targets: Object.keys(documents).map(blobUrl), outcome: "failed", error: { message: String((error as Error).message).split("\n")[0] },
      }));
      throw error;
    });
    for (const p of published.uploaded) progress(`  uploaded ${p}`);
    for (const p of published.unchanged) progress(`  unchanged ${p}`);
    if (published.uploaded.length) {
      const { changeRecord } = await import("../lib/audit/records.mts");
      await (await ctx.audit()).append(changeRecord({
        operation: "issuer.publish", targets: published.uploaded.map(blobUrl), outcome: "succeeded",
        detail: { issuer, kids: rotateLib.publishedJwksOf(idp).map((k) => k.kid) },
      }));
    }

    progress("Verifying: anonymous fetch of both documents, then a Key Vault-signed test JWT");
    const signer = await ctx.signerFor(active);
    await retry(() => issuerLib.verifyIssuerSetup({ issuer, signer }), rbacRetry);
  }

  // The ledger is decided again on the file as it is now (under its lock): another run may have set one.
  const ledgerContainerName = o.ledgerContainer === undefined ? undefined : output("ledgerContainerName") as string;
  let ledgerAction: "set" | "keep" | undefined;
  const { config: saved, changed, copied } = await ctx.updateConfig((current) => {
    ledgerAction = ledgerContainerName === undefined
      ? undefined
      : ledgerLib.planLedgerConfig({ current: current.publisher.ledger, blobEndpoint, container: ledgerContainerName, path });
    return withPublisher(current, {
      optional: {
        ...current.publisher.optional,
        storageAccountName: output("storageAccountName") as string,
        containerName,
        keyVaultName: output("keyVaultName") as string,
      },
      idp: _withoutUndefined({ ...current.publisher.idp, ...idp, ...(issuerHost === "blob" ? { blobEndpoint: undefined } : {}) }),
      ...(ledgerAction === "set" ? { ledger: ledgerLib.blobLedgerConfig({ blobEndpoint, container: ledgerContainerName! }) } : {}),
    });
  });
  progress(changed ? `Wrote ${path}` : `${path} already up to date`);
  if (copied) progress("  and the copy of config.json beside the ledger (what the job's replicas read)");
  const ledger = ledgerAction === undefined ? undefined : parseLedgerSpec(saved.publisher.ledger, `${path} publisher.ledger`);
  const ledgerWhere = ledger?.kind === "blob" ? `${ledger.blobEndpoint}${ledger.container}/${ledger.prefix}` : undefined;
  if (ledgerAction === "set" && ledgerBefore.kind === "file" && await ledgerLib.hasLocalRecords(ctx.paths.auditPath)) {
    progress(`Note: the records of ${ctx.paths.auditPath} stay there; copy them into the new ledger once: node scripts/0-ledger.mts import`);
  }
  if (ledgerAction !== undefined && ctx.settings.ledger !== undefined) progress("Note: METERING_LEDGER is set and names the ledger instead of publisher.ledger while it is");

  const signing = idpKeysOf(saved.publisher.idp!).find((k) => k.state === "active")!;
  if (o.json) out(JSON.stringify(saved.publisher.idp, null, 2));
  else {
    const fields: Array<[string, string]> = [
      ["issuer", issuer],
      ["host", issuerHost === "static-website" ? "static website ($web)" : `blob container ${containerName}`],
      ["discovery", `${issuer}/${issuerLib.DISCOVERY_PATH}`],
      ["jwks", `${issuer}/${issuerLib.JWKS_PATH}`],
      ["kid", signing.kid],
      ["key", signing.keyId],
      ["verified", "yes: both documents are public and a Key Vault-signed JWT verifies against the JWKS"],
    ];
    if (ledgerWhere) fields.push(["ledger", `${ledgerWhere}${ledgerAction === "keep" ? " (already configured)" : ""}`]);
    if (migrated) {
      fields.push(["migration", `phase 1 of 3 done: the thumbprint kid is published, the bash tool's kid still signs; run 0-isv-setup --rotate-key from ${new Date(migrated.next.dueAtMs).toISOString()} to switch`]);
    }
    for (const line of renderFields(fields, { width: widthOf(process.stdout) })) out(line);
  }
  return EXIT_OK;
}

const CRYPTO_OFFICER_ROLE_ID = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";

/**
 * The name of `principalId`'s assignment of a role exactly at `scope`, or undefined (also when
 * the scope does not exist yet or cannot be read: the template then creates the assignment).
 */
async function existingAssignmentName(scope: string, principalId: string, roleId: string): Promise<string | undefined> {
  const az = await import("../lib/azure/az.mts");
  const filter = encodeURIComponent(`principalId eq '${principalId}'`);
  const listed = await az.rest({ method: "GET", url: `${scope}/providers/Microsoft.Authorization/roleAssignments?$filter=${filter}&api-version=2022-04-01` })
    .catch(() => undefined) as { value?: Array<{ name?: string; properties?: { scope?: string; roleDefinitionId?: string } }> } | undefined;
  const found = (listed?.value ?? []).find((a) =>
    a.properties?.scope?.toLowerCase() === scope.toLowerCase() && a.properties?.roleDefinitionId?.toLowerCase().endsWith(`/${roleId}`)
  );
  return found?.name;
}

/** `value` without its undefined members (so JSON.stringify and the "unchanged" check agree). */
function _withoutUndefined<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Runs a rotation phase and writes its audit record: every change it made, or the failure. */
async function recordedPhase<T extends { changes: Array<{ action: string; targets: string[]; kids: string[] }>; idp: IdpConfig }>(
  ctx: Publisher,
  step: { phase: string; number: number; migration?: boolean; key?: { kid: string; keyId: string } },
  fn: () => Promise<T>,
): Promise<T> {
  const { changeRecord } = await import("../lib/audit/records.mts");
  const operation = step.migration ? "issuer.migrateKid" : "issuer.rotateKey";
  const audit = await ctx.audit();
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    const e = error as { code?: string; message?: string };
    await audit.append(changeRecord({
      operation, targets: step.key ? [step.key.keyId] : [], outcome: "failed",
      error: { ...(e.code ? { code: e.code } : {}), message: String(e.message ?? error).split("\n")[0] }, detail: { phase: step.number, step: step.phase },
    }));
    throw error;
  }
  const signing = idpKeysOf(result.idp).find((k) => k.state === "active");
  await audit.append(changeRecord({
    operation,
    targets: [...new Set(result.changes.flatMap((c) => c.targets))],
    outcome: "succeeded",
    detail: { phase: step.number, step: step.phase, changes: result.changes, signingKid: signing?.kid },
  }));
  return result;
}

/** The idp of config when it is complete, records its keys, and uses the deployed key; else undefined. */
function rotationStateToKeep(config: MeteringConfig, keyUri: string): IdpConfig | undefined {
  const idp = config.publisher.idp;
  if (!idp || !Array.isArray(idp.keys) || idp.keyUri !== keyUri) return undefined;
  return configProblems(config, { stage: "idp" }).length === 0 ? idp : undefined;
}

/**
 * The idp of a config the bash tool wrote, to migrate: complete, of the deployed key, and signing
 * with a legacy kid (the versioned Key Vault key URL); else undefined.
 */
function legacyIdpToMigrate(config: MeteringConfig, keyUri: string): IdpConfig | undefined {
  const idp = config.publisher.idp;
  if (!idp || idp.keyUri !== keyUri || configProblems(config, { stage: "idp" }).length > 0) return undefined;
  const active = idpKeysOf(idp).find((k) => k.state === "active");
  return active && /^https:\/\//i.test(active.kid) ? idp : undefined;
}

/** --rotate-key: the next rotation phase, or a refusal that says when it can run (nothing changed). */
async function rotateKey(publisher: Publisher, json: boolean): Promise<number> {
  const rotation = await import("../lib/issuer/rotation.mts");
  const { config, paths: { configPath: path } } = publisher;
  const nowMs = rotation.rotationNow(publisher.settings);
  const step = rotation.nextRotationStep(config.publisher.idp!);
  rotation.assertRotationDue(step, nowMs);

  const { runRotationPhase } = await import("../lib/issuer/rotate-key.mts");
  const credential = await publisher.credential();
  const { idp, next } = await recordedPhase(publisher, step, () => runRotationPhase({
    config, step, nowMs, credential, signerFor: publisher.signerFor, settings: publisher.settings, onProgress: progress,
  }));
  // A phase may drop a key of idp (legacyJwksPath once the bash tool's JWKS is deleted): idp is whole.
  const { copied } = await publisher.updateConfig((current) => withPublisher(current, { idp: { ...idp } }));
  progress(`Wrote ${path}${copied ? " and the copy of config.json beside the ledger" : ""}`);

  const dueAt = next.phase === "publish" ? null : new Date(next.dueAtMs).toISOString();
  if (json) out(JSON.stringify({ phase: step.number, done: step.phase, keys: idp.keys, next: { phase: next.phase, dueAt } }, null, 2));
  else {
    const width = widthOf(process.stdout);
    out(renderFields([["phase", `${step.number} of 3 (${step.phase}) done`]], { width })[0]);
    out("");
    // A thumbprint and a Key Vault version are long; their ends tell them apart. --json has the full key ids.
    const keys = renderTable((idp.keys ?? []).map((k) => [k.state, k.kid, k.since.replace(/\.\d+Z$/, "Z"), k.keyId.split("/").pop() ?? k.keyId]), {
      columns: ["STATE", { header: "KID", fit: "middle", minWidth: 13 }, "SINCE", { header: "KEY VERSION", fit: "middle", minWidth: 13 }],
      width,
      empty: "(no keys recorded)",
    });
    for (const line of keys) out(line);
    out("");
    for (const line of renderFields([["next", dueAt ? `phase ${next.number} of 3 (${next.phase}) from ${dueAt}` : "rotation complete; the next --rotate-key starts a new one"]], { width })) out(line);
  }
  return EXIT_OK;
}

process.exitCode = await main(process.argv.slice(2));
