// Signing JWTs without holding a private key: the Signer interface, the Key Vault signer
// (the key never leaves the vault), a local signer for tests, and signJwt.
import { base64url } from "jose";
import { SigningError } from "../core/errors.mts";
import { describeKeyVaultError, keyVaultClientOptions } from "./signing-key.mts";
import type { KeyVaultSettings } from "./signing-key.mts";
import type { TokenCredential } from "@azure/identity";

/** Something that signs bytes with RS256 (RSASSA-PKCS1-v1_5 over SHA-256) under a `kid`. */
export interface Signer {
  /** Goes into the JWT header; must equal the `kid` of the published JWK. */
  kid: string;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * A signer backed by a Key Vault key. `keyId` should carry the version so a rotated key
 * cannot sign under the old `kid` by surprise. Needs `keys/sign` (Key Vault Crypto User).
 */
export async function createKeyVaultSigner(options: {
  keyId: string;
  kid: string;
  credential: TokenCredential;
  settings: KeyVaultSettings;
}): Promise<Signer> {
  const { CryptographyClient } = await import("@azure/keyvault-keys");
  const client = new CryptographyClient(options.keyId, options.credential, keyVaultClientOptions(options.settings));
  const signOnce = async (data: Uint8Array): Promise<Uint8Array> => {
    try {
      // signData hashes locally (SHA-256) and sends only the digest to the vault.
      const { result } = await client.signData("RS256", data);
      return result;
    } catch (cause) {
      throw new SigningError(`Cannot sign with Key Vault key ${options.keyId}: ${describeKeyVaultError(cause)}`, { cause });
    }
  };
  // The client reads the key (GET) before its first signature, and every call that starts
  // before that read has ended reads it again, twice: a first wave of 64 signatures made 128
  // GETs. So the first call goes alone and the others wait for it to end (whatever its
  // outcome); after it the key is held and no call reads it again.
  let first: Promise<void> | undefined;
  return {
    kid: options.kid,
    async sign(data: Uint8Array): Promise<Uint8Array> {
      if (!first) {
        const signed = signOnce(data);
        first = signed.then(() => {}, () => {});
        return await signed;
      }
      await first;
      return await signOnce(data);
    },
  };
}

/** A signer over a local private CryptoKey (RSASSA-PKCS1-v1_5, SHA-256); for tests and offline use. */
export function createLocalSigner(options: { privateKey: CryptoKey; kid: string }): Signer {
  return {
    kid: options.kid,
    async sign(data: Uint8Array): Promise<Uint8Array> {
      const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", options.privateKey, data as BufferSource);
      return new Uint8Array(signature);
    },
  };
}

const _encoder = new TextEncoder();

/**
 * Builds and signs a compact JWS: b64url(header) "." b64url(payload) "." b64url(signature).
 * The header always says alg RS256 and the signer's kid; typ defaults to JWT.
 *
 * @example
 * const jwt = await signJwt({ payload: { iss, sub, aud, iat, exp }, signer });
 */
export async function signJwt(options: {
  header?: Record<string, unknown>;
  payload: Record<string, unknown>;
  signer: Signer;
}): Promise<string> {
  const header = { typ: "JWT", ...options.header, alg: "RS256", kid: options.signer.kid };
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(options.payload))}`;
  const signature = await options.signer.sign(_encoder.encode(input));
  if (!(signature instanceof Uint8Array) || signature.length === 0) {
    throw new SigningError(`Cannot sign JWT with key ${options.signer.kid}: the signer returned no signature`);
  }
  return `${input}.${base64url.encode(signature)}`;
}
