// One phase of a signing-key rotation against Key Vault and the issuer's blob container: the
// side effects around the pure plan of lib/issuer/rotation.mts. Returns the new publisher.idp; the
// caller writes it to config.json (nothing is written here).
import { idpKeysOf, publishedKeysOf, signingKeyOf, type IdpConfig, type MeteringConfig } from "../state/config.mts";
import { createKeyVaultKeyVersion } from "../identity/signing-key.mts";
import {
  blobLocationOfIssuer, buildPublicJwk, issuerDocuments, publishIssuerDocuments, rsaModulusBits, verifyIssuerSetup, type FetchLike, type PublicJwk,
} from "./oidc.mts";
import { nextRotationStep, withActivatedKey, withPublishedKey, withRetiredKeys, type RotationStep } from "./rotation.mts";
import type { Signer } from "../identity/signer.mts";
import type { KeyVaultSettings } from "../identity/signing-key.mts";
import type { TokenCredential } from "@azure/identity";

/** The JWKS entries of every key the idp publishes (active first). Pure. */
export function publishedJwksOf(idp: IdpConfig): PublicJwk[] {
  return publishedKeysOf(idp).map((k) => ({ kty: "RSA", use: "sig", alg: "RS256", kid: k.kid, n: k.jwk.n, e: k.jwk.e }));
}

export interface RotationPhaseResult {
  /** The phase that ran. */
  step: RotationStep;
  /** publisher.idp after the phase. */
  idp: IdpConfig;
  /** The phase after this one, with its earliest time. */
  next: RotationStep;
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
  const location = blobLocationOfIssuer({ issuer, containerName: config.publisher.optional?.containerName ?? "" });

  const publish = async (next: IdpConfig) => {
    const keys = publishedJwksOf(next);
    log(`Publishing the JWKS of ${issuer} with ${keys.length} key(s): ${keys.map((k) => k.kid).join(", ")}`);
    await publishIssuerDocuments({ ...location, credential, documents: issuerDocuments({ issuer, keys }) });
  };
  const verifyWith = async (key: { keyId: string; kid: string }) => {
    log(`Verifying: anonymous fetch of the issuer documents, then a test JWT signed by ${key.keyId}`);
    const signer = await options.signerFor(key);
    await verifyIssuerSetup({ issuer, signer, fetch: options.fetch });
  };

  let idpAfter: IdpConfig;
  if (step.phase === "publish") {
    const active = idpKeysOf(idp).find((k) => k.state === "active")!;
    const keySizeBits = rsaModulusBits(active.jwk.n);
    log(`Phase 1 of 3: creating a new ${keySizeBits}-bit version of ${idp.keyUri}`);
    const created = await createKeyVaultKeyVersion({ keyUri: idp.keyUri, keySizeBits, credential, settings: options.settings });
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
    await verifyWith(signingKeyOf(idpAfter));
  }
  return { step, idp: idpAfter, next: nextRotationStep(idpAfter) };
}
