#!/usr/bin/env node
// Sets up the ISV's OIDC issuer: deploys storage and Key Vault (templates/0-isv-setup.bicep),
// publishes the discovery document and JWKS, proves them with a Key Vault-signed test JWT.
import { fileURLToPath } from "node:url";
import { EXIT_OK, runCommand } from "../lib/cli.mts";
import { loadConfig, updateConfig, withPublisher, type IdpConfig } from "../lib/config.mts";
import { configPathIn, resolveDataDir } from "../lib/paths.mts";
import { MeteringError } from "../lib/errors.mts";

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
Running it again changes nothing.

Options:
  --json         print the resulting publisher.idp as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR, AZURE_TOKEN_CREDENTIALS, METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION,
  METERING_DISABLE_INSTANCE_DISCOVERY (see docs/internals.md); \`az\` must be on PATH and signed in

Exit codes: 0 ok, 1 failed, 2 usage error or missing defaults (run 0-add-defaults)
`;

const OPTIONS = { json: { type: "boolean" } } as const;

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`${text}\n`);

/** True when an error (or one of its causes) is an HTTP 403: typically a role not yet propagated. */
function isForbidden(error: unknown): boolean {
  for (let e = error as { statusCode?: number; cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i++) {
    if (e.statusCode === 403) return true;
  }
  return false;
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const path = configPathIn(resolveDataDir());
    const config = await loadConfig({ path, stage: "defaults" });
    const publisher = config.publisher as Required<Pick<typeof config.publisher, "subscriptionId" | "resourceGroup" | "location">>;

    const az = await import("../lib/az.mts");
    const { createIsvCredential, getSignedInObjectId } = await import("../lib/isv-credential.mts");
    const { getKeyVaultPublicKey } = await import("../lib/keyvault.mts");
    const { createKeyVaultSigner } = await import("../lib/signer.mts");
    const issuerLib = await import("../lib/issuer.mts");
    const { retry } = await import("../lib/retry.mts");
    const rbacRetry = {
      ...RBAC_RETRY,
      isRetryable: isForbidden,
      onRetry: ({ delayMs }: { delayMs: number }) => progress(`  access denied; a new role assignment may still be propagating, retrying in ${delayMs / 1000} s`),
    };

    const credential = await createIsvCredential();
    const userObjectId = await getSignedInObjectId({ credential });

    progress(`Resource group ${publisher.resourceGroup} in ${publisher.location}`);
    await az.groupCreate({ subscriptionId: publisher.subscriptionId, name: publisher.resourceGroup, location: publisher.location });

    progress(`Deploying ${DEPLOYMENT_NAME} (storage, Key Vault, signing key); this can take a few minutes`);
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

    progress(`Reading the public key ${output("keyUriWithVersion")}`);
    const key = await retry(() => getKeyVaultPublicKey({ keyId: output("keyUriWithVersion") as string, credential }), rbacRetry);
    if (!key.keyOps.includes("sign")) throw new MeteringError(`Cannot sign with key ${key.keyId}: its key_ops ${JSON.stringify(key.keyOps)} lack "sign"`);
    const jwk = await issuerLib.buildPublicJwk(key);

    progress(`Publishing the issuer documents of ${issuer}`);
    const published = await retry(
      () => issuerLib.publishIssuerDocuments({ blobEndpoint, containerName, credential, documents: issuerLib.issuerDocuments({ issuer, keys: [jwk] }) }),
      rbacRetry,
    );
    for (const p of published.uploaded) progress(`  uploaded ${p}`);
    for (const p of published.unchanged) progress(`  unchanged ${p}`);

    progress("Verifying: anonymous fetch of both documents, then a Key Vault-signed test JWT");
    const signer = await createKeyVaultSigner({ keyId: key.keyId, kid: jwk.kid, credential });
    const verified = await retry(() => issuerLib.verifyIssuerSetup({ issuer, signer }), rbacRetry);

    const idp: IdpConfig = { issuer, keyUri: output("keyUri") as string, keyId: key.keyId, keyJson: { ...jwk } };
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
      out(`issuer     ${issuer}`);
      out(`discovery  ${issuer}/${issuerLib.DISCOVERY_PATH}`);
      out(`jwks       ${verified.jwksUri}`);
      out(`kid        ${jwk.kid}`);
      out(`key        ${key.keyId}`);
      out("verified   yes: both documents are public and a Key Vault-signed JWT verifies against the JWKS");
    }
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
