// Access to a connected customer's tenant as the UAMI in its managed resource group: federated
// tokens for any scope (one Key Vault signature per identity, MSAL's cache per scope), and the
// same as a TokenCredential for SDK pipelines.
import type { AccessToken, TokenCredential } from "@azure/identity";
import { getCustomer, loadConfig, type CustomerConfig, type MeteringConfig } from "../state/config.mts";
import { auditPathIn, configPathIn, resolveDataDir } from "../state/paths.mts";
import type { FederatedIdentity, FederatedToken } from "../identity/federation.mts";

export interface CustomerSession {
  identity: FederatedIdentity;
  /** A token of the customer's UAMI for `scope` (a `…/.default` scope). */
  getToken(scope: string): Promise<FederatedToken>;
  /** The session as a TokenCredential: `getToken(scopes)` federates for the first scope. */
  credential: TokenCredential;
}

/** A connected customer's entry with the config and audit paths: what every 3-* script starts from. */
export async function loadConnectedCustomer(options: { subscriptionId: string; managedResourceGroup: string }): Promise<{
  config: MeteringConfig;
  customer: CustomerConfig;
  auditPath: string;
}> {
  const dataDir = resolveDataDir();
  const path = configPathIn(dataDir);
  const config = await loadConfig({ path, stage: "idp" });
  const customer = getCustomer(config, { ...options, path });
  return { config, customer, auditPath: auditPathIn(dataDir) };
}

/** The federated identity a customer entry describes. */
export function customerIdentity(customer: CustomerConfig): FederatedIdentity {
  return { tenantId: customer.tenantId, clientId: customer.uamiClientId, subject: customer.subject, audience: customer.audience };
}

/**
 * Opens a session for a connected customer: the ISV credential signs assertions with the Key
 * Vault key of config.publisher.idp, Entra in the customer's tenant exchanges them.
 */
export async function openCustomerSession(options: {
  config: MeteringConfig;
  customer: CustomerConfig;
  env?: Record<string, string | undefined>;
}): Promise<CustomerSession> {
  const idp = options.config.publisher.idp!;
  const { createIsvCredential } = await import("../identity/isv-credential.mts");
  const { createKeyVaultSigner } = await import("../identity/signer.mts");
  const { createFederatedTokenSource } = await import("../identity/federation.mts");
  const isv = await createIsvCredential({ env: options.env });
  const signer = await createKeyVaultSigner({ keyId: idp.keyId, kid: idp.keyJson.kid, credential: isv, env: options.env });
  const source = createFederatedTokenSource({ issuer: idp.issuer, signer, env: options.env });
  const identity = customerIdentity(options.customer);
  const getToken = (scope: string) => source.getToken({ ...identity, scope });
  return {
    identity,
    getToken,
    credential: {
      async getToken(scopes: string | string[]): Promise<AccessToken> {
        const scope = Array.isArray(scopes) ? scopes[0] : scopes;
        const t = await getToken(scope);
        return { token: t.token, expiresOnTimestamp: t.expiresOnTimestamp };
      },
    },
  };
}

/** A TokenCredential that hands out one token it was given (a managed app's listTokens token). */
export function staticTokenCredential(token: string, expiresOnTimestamp: number): TokenCredential {
  return { getToken: async () => ({ token, expiresOnTimestamp }) };
}
