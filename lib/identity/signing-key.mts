// Key Vault access for the signing key: client options from the environment and reading the
// key's public half. The SDK is imported lazily so scripts start fast.
import { SigningError } from "../core/errors.mts";
import { baseClientOptions, type SdkClientOptions } from "../core/http.mts";
import type { Settings } from "../core/settings.mts";
import type { TokenCredential } from "@azure/identity";

/**
 * Options every Key Vault client gets. `METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION=true`
 * turns off the SDK's check that the vault host ends in the challenge's resource domain
 * (needed for vaults outside *.vault.azure.net). Retries and the per-try timeout come from
 * lib/core/http.mts.
 */
export type KeyVaultSettings = Pick<Settings, "httpTryTimeoutMs" | "keyVaultDisableChallengeVerification">;

export function keyVaultClientOptions(settings: KeyVaultSettings): SdkClientOptions & {
  disableChallengeResourceVerification: boolean;
} {
  return { ...baseClientOptions(settings), disableChallengeResourceVerification: settings.keyVaultDisableChallengeVerification };
}

/** The parts of a Key Vault key id `https://<vault>/keys/<name>[/<version>]`. */
export function parseKeyId(keyId: string): { vaultUrl: string; name: string; version?: string } {
  let url: URL;
  try {
    url = new URL(keyId);
  } catch (cause) {
    throw new SigningError(`Cannot use key id ${JSON.stringify(keyId)}: not a URL`, { cause });
  }
  const parts = url.pathname.split("/").filter(Boolean);
  if (parts.length < 2 || parts.length > 3 || parts[0] !== "keys") {
    throw new SigningError(`Cannot use key id ${JSON.stringify(keyId)}: expected https://<vault>/keys/<name>[/<version>]`);
  }
  return { vaultUrl: `${url.protocol}//${url.host}`, name: parts[1], ...(parts[2] ? { version: parts[2] } : {}) };
}

/** A Key Vault RSA key's public half and its versioned id. */
export interface KeyVaultPublicKey {
  /** Versioned key id `https://<vault>/keys/<name>/<version>`. */
  keyId: string;
  kty: string;
  n: Uint8Array;
  e: Uint8Array;
  keyOps: string[];
}

/** Explains a Key Vault SDK error in one line with the likely fix. */
export function describeKeyVaultError(error: unknown): string {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (e?.statusCode === 403) {
    return `forbidden (${e.code ?? "Forbidden"}): the signed-in identity needs the Key Vault Crypto User or Crypto Officer role on the vault; new role assignments take a few minutes`;
  }
  if (e?.statusCode === 404) return `not found (${e.code ?? "NotFound"}): check publisher.idp.keyId in config.json`;
  if (e?.statusCode === 401) return `unauthorized: sign in again (az login) or check the credential`;
  const firstLine = String(e?.message ?? error).split("\n")[0];
  return e?.statusCode ? `HTTP ${e.statusCode} ${e.code ?? ""}: ${firstLine}`.trim() : firstLine;
}

/**
 * Reads a key's public half (needs `keys/get`). `keyId` with a version reads that version,
 * without one the latest.
 */
export async function getKeyVaultPublicKey(options: {
  keyId: string;
  credential: TokenCredential;
  settings: KeyVaultSettings;
}): Promise<KeyVaultPublicKey> {
  const { vaultUrl, name, version } = parseKeyId(options.keyId);
  const { KeyClient } = await import("@azure/keyvault-keys");
  const client = new KeyClient(vaultUrl, options.credential, keyVaultClientOptions(options.settings));
  let key;
  try {
    key = await client.getKey(name, version ? { version } : {});
  } catch (cause) {
    throw new SigningError(`Cannot read key ${options.keyId}: ${describeKeyVaultError(cause)}`, { cause });
  }
  const jwk = key.key;
  if (!key.id || !jwk?.n || !jwk?.e || !jwk.kty?.startsWith("RSA")) {
    throw new SigningError(`Cannot use key ${options.keyId}: not an RSA key (kty ${jwk?.kty ?? "missing"})`);
  }
  return { keyId: key.id, kty: jwk.kty, n: jwk.n, e: jwk.e, keyOps: (jwk.keyOps ?? []) as string[] };
}

/**
 * Creates a new version of a Key Vault RSA key (needs `keys/create`: Key Vault Crypto
 * Officer) with the same size as `keySizeBits`, usable only to sign and verify. Returns the
 * new version's public half.
 */
export async function createKeyVaultKeyVersion(options: {
  keyUri: string;
  keySizeBits: number;
  credential: TokenCredential;
  settings: KeyVaultSettings;
}): Promise<KeyVaultPublicKey> {
  const { vaultUrl, name } = parseKeyId(options.keyUri);
  const { KeyClient } = await import("@azure/keyvault-keys");
  const client = new KeyClient(vaultUrl, options.credential, keyVaultClientOptions(options.settings));
  let key;
  try {
    key = await client.createRsaKey(name, { keySize: options.keySizeBits, keyOps: ["sign", "verify"] });
  } catch (cause) {
    throw new SigningError(`Cannot create a new version of key ${options.keyUri}: ${describeKeyVaultError(cause)}`, { cause });
  }
  const jwk = key.key;
  if (!key.id || !jwk?.n || !jwk?.e) throw new SigningError(`Cannot use the new version of ${options.keyUri}: the vault returned no RSA public key`);
  return { keyId: key.id, kty: jwk.kty ?? "RSA", n: jwk.n, e: jwk.e, keyOps: (jwk.keyOps ?? []) as string[] };
}
