#!/usr/bin/env node
// Sets up the ISV's OIDC issuer: deploys storage and Key Vault (templates/0-isv-setup.bicep),
// publishes the discovery document and JWKS, proves them; --rotate-key rotates the signing key.
import { fileURLToPath } from "node:url";
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import {
  configProblems, idpKeysOf, updateConfig, withPublisher, type IdpConfig, type IdpKey, type MeteringConfig,
} from "../lib/state/config.mts";
import type { Publisher } from "../lib/publisher/context.mts";
import { MeteringError } from "../lib/core/errors.mts";
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
  --json         print the resulting publisher.idp as JSON
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

const OPTIONS = { json: { type: "boolean" }, "rotate-key": { type: "boolean" } } as const;

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
    const { usePublisher } = await import("../lib/publisher/context.mts");
    if (values["rotate-key"]) return await usePublisher({ stage: "idp" }, (publisher) => rotateKey(publisher, values.json === true));
    return await usePublisher({ stage: "defaults" }, async (ctx) => {
    const { config, paths: { configPath: path } } = ctx;
    const publisher = config.publisher as Required<Pick<typeof config.publisher, "subscriptionId" | "resourceGroup" | "location">>;

    const az = await import("../lib/azure/az.mts");
    const { getSignedInObjectId } = await import("../lib/identity/isv-credential.mts");
    const { getKeyVaultPublicKey } = await import("../lib/identity/signing-key.mts");
    const issuerLib = await import("../lib/issuer/oidc.mts");
    const { retry } = await import("../lib/core/retry.mts");
    const rbacRetry = {
      ...RBAC_RETRY,
      isRetryable: isForbidden,
      onRetry: ({ delayMs }: { delayMs: number }) => progress(`  access denied; a new role assignment may still be propagating, retrying in ${delayMs / 1000} s`),
    };

    const credential = await ctx.credential();
    const userObjectId = await getSignedInObjectId({ credential });

    progress(`Resource group ${publisher.resourceGroup} in ${publisher.location}`);
    await az.groupCreate({ subscriptionId: publisher.subscriptionId, name: publisher.resourceGroup, location: publisher.location });

    progress(`Deploying ${DEPLOYMENT_NAME} (storage, Key Vault, signing key): a few minutes`);
    const deployment = await az.deploymentGroupCreate({
      subscriptionId: publisher.subscriptionId,
      resourceGroup: publisher.resourceGroup,
      name: DEPLOYMENT_NAME,
      templateFile: TEMPLATE_FILE,
      parameters: { userObjectId, location: publisher.location },
    });
    const outputs = az.deploymentOutputs(deployment);
    const output = (name: string) => az.getDeploymentOutput(outputs, name);
    const missing = REQUIRED_OUTPUTS.filter((name) => typeof output(name) !== "string" || output(name) === "");
    if (missing.length > 0) {
      throw new MeteringError(`Cannot use deployment ${DEPLOYMENT_NAME}: outputs ${missing.join(", ")} are missing (is ${TEMPLATE_FILE} up to date?)`);
    }
    const blobEndpoint = output("blobEndpoint") as string;
    const containerName = output("containerName") as string;
    const issuer = issuerLib.issuerFromBlobEndpoint({ blobEndpoint, containerName });

    // A finished setup of the same key keeps its rotation state: the template's keyUriWithVersion
    // is the newest version, which during a rotation is not (yet) the signing key.
    const previous = rotationStateToKeep(config, output("keyUri") as string);
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
    const { publishedJwksOf } = await import("../lib/issuer/rotate-key.mts");
    const jwks = publishedJwksOf({ ...previous, keys } as IdpConfig);

    progress(`Publishing the issuer documents of ${issuer}`);
    const published = await retry(
      () => issuerLib.publishIssuerDocuments({ blobEndpoint, containerName, credential, documents: issuerLib.issuerDocuments({ issuer, keys: jwks }) }),
      rbacRetry,
    );
    for (const p of published.uploaded) progress(`  uploaded ${p}`);
    for (const p of published.unchanged) progress(`  unchanged ${p}`);

    progress("Verifying: anonymous fetch of both documents, then a Key Vault-signed test JWT");
    const signer = await ctx.signerFor(active);
    const verified = await retry(() => issuerLib.verifyIssuerSetup({ issuer, signer }), rbacRetry);

    const idp: IdpConfig = { issuer, keyUri: output("keyUri") as string, keyId: active.keyId, keyJson: { ...active.jwk }, keys };
    const { config: saved, changed } = await updateConfig({
      path,
      update: (current) =>
        withPublisher(current, {
          optional: {
            ...current.publisher.optional,
            storageAccountName: output("storageAccountName") as string,
            containerName,
            keyVaultName: output("keyVaultName") as string,
          },
          idp: { ...current.publisher.idp, ...idp },
        }),
    });
    progress(changed ? `Wrote ${path}` : `${path} already up to date`);

    if (values.json) out(JSON.stringify(saved.publisher.idp, null, 2));
    else {
      const fields: Array<[string, string]> = [
        ["issuer", issuer],
        ["discovery", `${issuer}/${issuerLib.DISCOVERY_PATH}`],
        ["jwks", verified.jwksUri],
        ["kid", active.kid],
        ["key", active.keyId],
        ["verified", "yes: both documents are public and a Key Vault-signed JWT verifies against the JWKS"],
      ];
      for (const line of renderFields(fields, { width: widthOf(process.stdout) })) out(line);
    }
    return EXIT_OK;
    });
  } });
}

/** The idp of config when it is complete, records its keys, and uses the deployed key; else undefined. */
function rotationStateToKeep(config: MeteringConfig, keyUri: string): IdpConfig | undefined {
  const idp = config.publisher.idp;
  if (!idp || !Array.isArray(idp.keys) || idp.keyUri !== keyUri) return undefined;
  return configProblems(config, { stage: "idp" }).length === 0 ? idp : undefined;
}

/** --rotate-key: the next rotation phase, or a refusal that says when it can run (nothing changed). */
async function rotateKey(publisher: Publisher, json: boolean): Promise<number> {
  const rotation = await import("../lib/issuer/rotation.mts");
  const { config, paths: { configPath: path } } = publisher;
  const nowMs = rotation.rotationNow(publisher.settings);
  const step = rotation.nextRotationStep(config.publisher.idp!);
  rotation.assertRotationDue(step, nowMs);

  const { runRotationPhase } = await import("../lib/issuer/rotate-key.mts");
  const { idp, next } = await runRotationPhase({
    config, step, nowMs, credential: await publisher.credential(), signerFor: publisher.signerFor, settings: publisher.settings, onProgress: progress,
  });
  await updateConfig({ path, update: (current) => withPublisher(current, { idp: { ...current.publisher.idp, ...idp } }) });
  progress(`Wrote ${path}`);

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
