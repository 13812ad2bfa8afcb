// One phase of a signing-key rotation against Key Vault and the issuer's blob container: the
// side effects around the pure plan of lib/issuer/rotation.mts. Returns the new publisher.idp; the
// caller writes it to config.json (nothing is written here).
import { idpKeysOf, publishedKeysOf, signingKeyOf, type IdpConfig, type IdpKey, type MeteringConfig } from "../state/config.mts";
import { createKeyVaultKeyVersion, getKeyVaultPublicKey } from "../identity/signing-key.mts";
import { SigningError } from "../core/errors.mts";
import {
  blobLocationOfIssuer, buildPublicJwk, deleteIssuerDocuments, DISCOVERY_PATH, fetchJsonDocument, issuerDocuments, JWKS_PATH, publishIssuerDocuments,
  rsaModulusBits, STATIC_WEBSITE_CONTAINER, verifyIssuerSetup, type FetchLike, type PublicJwk,
} from "./oidc.mts";
import { isLegacyKid, nextRotationStep, withActivatedKey, withNormalizedKey, withPublishedKey, withRetiredKeys, type RotationStep } from "./rotation.mts";
import type { Signer } from "../identity/signer.mts";
import type { KeyVaultSettings } from "../identity/signing-key.mts";
import type { TokenCredential } from "@azure/identity";

/** The JWKS entries of every key the idp publishes (active first). Pure. */
export function publishedJwksOf(idp: IdpConfig): PublicJwk[] {
  return publishedKeysOf(idp).map((k) => ({ kty: "RSA", use: "sig", alg: "RS256", kid: k.kid, n: k.jwk.n, e: k.jwk.e }));
}

/** Where the issuer documents of a config are uploaded: the blob endpoint and container. */
export function issuerLocationOf(config: MeteringConfig): { blobEndpoint: string; containerName: string } {
  const idp = config.publisher.idp!;
  if (idp.issuerHost === "static-website") return { blobEndpoint: idp.blobEndpoint!, containerName: STATIC_WEBSITE_CONTAINER };
  return blobLocationOfIssuer({ issuer: idp.issuer, containerName: config.publisher.optional?.containerName ?? "" });
}

/**
 * Blob path → document for every issuer document the idp publishes: the discovery document and
 * the JWKS, plus the same JWKS at the bash tool's path while a legacy kid is still published (a
 * cache holding the bash tool's discovery document reads the keys there). Pure.
 */
export function issuerDocumentsOf(idp: IdpConfig): Record<string, unknown> {
  const documents = issuerDocuments({ issuer: idp.issuer, keys: publishedJwksOf(idp) });
  if (idp.legacyJwksPath && publishedKeysOf(idp).some((k) => isLegacyKid(k.kid))) documents[idp.legacyJwksPath] = documents[JWKS_PATH];
  return documents;
}

/**
 * The bash tool's JWKS path under the issuer (its discovery document's jwks_uri, when that is
 * another blob of the issuer than ours), or undefined: read anonymously, as Entra reads it.
 */
export async function legacyJwksPathOf(options: { issuer: string; fetch?: FetchLike }): Promise<string | undefined> {
  const discovery = await fetchJsonDocument(`${options.issuer}/${DISCOVERY_PATH}`, { fetch: options.fetch }).catch(() => undefined) as { jwks_uri?: unknown } | undefined;
  const uri = discovery?.jwks_uri;
  const prefix = `${options.issuer}/`;
  if (typeof uri !== "string" || !uri.startsWith(prefix)) return undefined;
  const path = uri.slice(prefix.length);
  return path && path !== JWKS_PATH && path !== DISCOVERY_PATH && /^[A-Za-z0-9._~/-]+$/.test(path) ? path : undefined;
}

/**
 * Migration phase 1 (pure after the reads): the legacy key as this suite publishes it, plus its
 * thumbprint kid as a published key of the same Key Vault version. Throws SigningError when the
 * vault's key is not the one config.json records.
 */
async function _migrationPublish(options: { idp: IdpConfig; legacy: IdpKey; vaultKey: { n: Uint8Array; e: Uint8Array }; nowMs: number }): Promise<IdpConfig> {
  const { idp, legacy, vaultKey, nowMs } = options;
  const jwk = await buildPublicJwk(vaultKey);
  // The bash tool stored n and e as az printed them: standard base64 with padding.
  const toUrl = (v: string) => v.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const recorded = await buildPublicJwk({ n: toUrl(legacy.jwk.n), e: toUrl(legacy.jwk.e) }).catch(() => undefined);
  if (recorded?.kid !== jwk.kid) {
    throw new SigningError(`Cannot migrate kid ${legacy.kid}: Key Vault's key ${legacy.keyId} is not the public key config.json records for it (publisher.idp.keyJson); run 0-isv-setup on the config the bash tool wrote`);
  }
  const normalized = withNormalizedKey(idp, { kid: legacy.kid, jwk: { ...jwk, kid: legacy.kid } });
  return withPublishedKey(normalized, { kid: jwk.kid, keyId: legacy.keyId, jwk: { ...jwk }, nowMs });
}

export interface RotationPhaseResult {
  /** The phase that ran. */
  step: RotationStep;
  /** publisher.idp after the phase. */
  idp: IdpConfig;
  /** The phase after this one, with its earliest time. */
  next: RotationStep;
  /** What the phase changed in Azure besides config.json (blobs uploaded or deleted, a key version), for the audit log. */
  changes: RotationChange[];
}

/** One change a rotation phase made in Azure. */
export interface RotationChange {
  action: "createKeyVersion" | "publish" | "delete";
  /** Key ids or blob URLs. */
  targets: string[];
  /** The kids published after the change (empty for a delete). */
  kids: string[];
}

/**
 * Runs `step` (from nextRotationStep, already checked to be due):
 * 1 publish: new Key Vault key version, JWKS with old and new keys, both verified;
 * 2 activate: the waiting key signs a test JWT that verifies against the published JWKS;
 * 3 retire: JWKS without the keys that stopped signing, verified with the active key.
 */
export async function runRotationPhase(options: {
  config: MeteringConfig;
  step: RotationStep;
  nowMs: number;
  credential: TokenCredential;
  /** The signer of one key version (the publisher context's signerFor). */
  signerFor: (key: { keyId: string; kid: string }) => Promise<Signer>;
  settings: KeyVaultSettings;
  fetch?: FetchLike;
  onProgress?: (text: string) => void;
}): Promise<RotationPhaseResult> {
  const { config, step, nowMs, credential } = options;
  const idp = config.publisher.idp!;
  const log = options.onProgress ?? (() => {});
  const issuer = idp.issuer;
  const location = issuerLocationOf(config);
  const changes: RotationChange[] = [];
  const blobUrl = (path: string) => `${location.blobEndpoint.replace(/\/+$/, "")}/${location.containerName}/${path}`;

  const publish = async (next: IdpConfig) => {
    const keys = publishedJwksOf(next);
    log(`Publishing the JWKS of ${issuer} with ${keys.length} key(s): ${keys.map((k) => k.kid).join(", ")}`);
    const published = await publishIssuerDocuments({ ...location, credential, documents: issuerDocumentsOf(next) });
    if (published.uploaded.length) changes.push({ action: "publish", targets: published.uploaded.map(blobUrl), kids: keys.map((k) => k.kid) });
  };
  const verifyWith = async (key: { keyId: string; kid: string }) => {
    log(`Verifying: anonymous fetch of the issuer documents, then a test JWT signed by ${key.keyId}`);
    const signer = await options.signerFor(key);
    await verifyIssuerSetup({ issuer, signer, fetch: options.fetch });
  };

  let idpAfter: IdpConfig;
  if (step.phase === "publish" && step.migration) {
    const legacy = step.key!;
    log(`Phase 1 of 3 (migration): publishing the thumbprint kid of ${legacy.keyId} beside the bash tool's kid ${legacy.kid}, which keeps signing`);
    const vaultKey = await getKeyVaultPublicKey({ keyId: legacy.keyId, credential, settings: options.settings });
    idpAfter = await _migrationPublish({ idp, legacy, vaultKey, nowMs });
    const legacyJwksPath = idp.legacyJwksPath ?? await legacyJwksPathOf({ issuer, fetch: options.fetch });
    if (legacyJwksPath) idpAfter = { ...idpAfter, legacyJwksPath };
    await publish(idpAfter);
    const thumbprint = idpKeysOf(idpAfter).at(-1)!;
    await verifyWith(signingKeyOf(idpAfter));
    await verifyWith({ keyId: thumbprint.keyId, kid: thumbprint.kid });
  } else if (step.phase === "publish") {
    const active = idpKeysOf(idp).find((k) => k.state === "active")!;
    const keySizeBits = rsaModulusBits(active.jwk.n);
    log(`Phase 1 of 3: creating a new ${keySizeBits}-bit version of ${idp.keyUri}`);
    const created = await createKeyVaultKeyVersion({ keyUri: idp.keyUri, keySizeBits, credential, settings: options.settings });
    changes.push({ action: "createKeyVersion", targets: [created.keyId], kids: [] });
    const jwk = await buildPublicJwk(created);
    idpAfter = withPublishedKey(idp, { kid: jwk.kid, keyId: created.keyId, jwk: { ...jwk }, nowMs });
    await publish(idpAfter);
    await verifyWith(signingKeyOf(idpAfter));
    await verifyWith({ keyId: created.keyId, kid: jwk.kid });
  } else if (step.phase === "activate") {
    log(`Phase 2 of 3: signing with ${step.key!.keyId} from now on`);
    await verifyWith(step.key!);
    idpAfter = withActivatedKey(idp, { kid: step.key!.kid, nowMs });
  } else {
    idpAfter = withRetiredKeys(idp, { nowMs });
    const leaving = idpKeysOf(idp).filter((k) => k.state === "published" && k.deactivatedAt).map((k) => k.kid);
    log(`Phase 3 of 3: removing ${leaving.join(", ")} from the JWKS`);
    await publish(idpAfter);
    // The bash tool's JWKS path goes once no legacy kid is published any more.
    if (idpAfter.legacyJwksPath && !publishedKeysOf(idpAfter).some((k) => isLegacyKid(k.kid))) {
      const path = idpAfter.legacyJwksPath;
      const { deleted } = await deleteIssuerDocuments({ ...location, credential, paths: [path] });
      if (deleted.length) {
        log(`  deleted ${path} (the bash tool's JWKS)`);
        changes.push({ action: "delete", targets: deleted.map(blobUrl), kids: [] });
      }
      const { legacyJwksPath: _gone, ...rest } = idpAfter;
      idpAfter = rest as IdpConfig;
    }
    await verifyWith(signingKeyOf(idpAfter));
  }
  return { step, idp: idpAfter, next: nextRotationStep(idpAfter), changes };
}
