import { scanAuditLog, type AuditRecord } from "../../lib/audit/log.mts";
// Shared test helpers for test/unit: temp dirs, a generated RSA key, a bash-era config.
// Keys are generated at test time; none is ever committed.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { createLocalSigner, type Signer } from "../../lib/identity/signer.mts";

export async function tempDir(prefix = "metering-unit-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestKey {
  signer: Signer;
  publicKey: CryptoKey;
  /** Public JWK (kty, n, e). */
  publicJwk: { kty: string; n: string; e: string };
}

/** A fresh 2048-bit RSA key pair wrapped as a Signer with the given kid. */
export async function makeTestKey(kid = "test-kid"): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(publicKey);
  return { signer: createLocalSigner({ privateKey: privateKey as CryptoKey, kid }), publicKey: publicKey as CryptoKey, publicJwk: { kty: "RSA", n: jwk.n!, e: jwk.e! } };
}

export const PUBLISHER_TENANT = "11111111-1111-4111-8111-111111111111";
export const CUSTOMER_SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

/** A config.json as the original bash tool (jq) wrote it, including a key we do not know. */
export function bashEraConfig(): Record<string, any> {
  return {
    publisher: {
      aadTenantId: PUBLISHER_TENANT,
      subscriptionId: "22222222-2222-4222-8222-222222222222",
      resourceGroup: "marketplace-metering-idp-backend",
      location: "westeurope",
      optional: { storageAccountName: "idpabc", containerName: "public", keyVaultName: "idpabc" },
      idp: {
        issuer: "https://idpabc.blob.core.windows.net/public",
        keyUri: "https://idpabc.vault.azure.net/keys/idpkey",
        keyId: "https://idpabc.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef",
        keyJson: {
          kid: "https://idpabc.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef",
          keyOps: ["sign"],
          kty: "RSA",
          e: "AQAB",
          n: "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw",
        },
      },
      addedLater: { keep: true },
    },
    customers: {
      [CUSTOMER_SUB]: {
        "mrg-app1-20240101": {
          uamiClientId: "33333333-3333-4333-8333-333333333333",
          tenantId: "44444444-4444-4444-8444-444444444444",
          subject: `metering-submission-via-uami from ${PUBLISHER_TENANT}`,
          audience: "api://AzureADTokenExchange",
          uamiName: "metering-submission-uami",
          billing: {
            resourceId: "55555555-5555-4555-8555-555555555555",
            resourceUri: `/subscriptions/${CUSTOMER_SUB}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app1`,
          },
          planName: "silver",
        },
      },
    },
  };
}

/** Every record of an audit log and how many lines were not JSON, through the one reader (scanAuditLog). */
export async function scanRecords(path: string): Promise<{ records: AuditRecord[]; invalidLines: number }> {
  const records: AuditRecord[] = [];
  const { invalidLines } = await scanAuditLog({ path, onRecord: (r) => void records.push(r) });
  return { records, invalidLines };
}
