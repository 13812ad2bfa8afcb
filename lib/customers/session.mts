// Access to a connected customer's tenant as the UAMI in its managed resource group: federated
// tokens for any scope, and the same as a TokenCredential for SDK pipelines. Sessions come from
// the publisher context (lib/publisher/context.mts), which signs with the one Key Vault signer.
import { CustomerNotConnectedError } from "../core/errors.mts";
import type { TokenCredential } from "@azure/identity";
import type { CustomerConfig } from "../state/config.mts";
import type { FederatedIdentity, FederatedToken } from "../identity/federation.mts";

export interface CustomerSession {
  identity: FederatedIdentity;
  /** A token of the customer's UAMI for `scope` (a `…/.default` scope; default the metering API). */
  getToken(scope?: string): Promise<FederatedToken>;
  /** A token handed to a person or another tool (3-token): like getToken, and recorded in the audit log by its claims. */
  issueToken(scope: string): Promise<FederatedToken>;
  /** The session as a TokenCredential: `getToken(scopes)` federates for the first scope. */
  credential: TokenCredential;
}

/** The federated identity a customer entry describes. */
export function customerIdentity(customer: CustomerConfig): FederatedIdentity {
  if (customer.billingOnly === true) {
    throw new CustomerNotConnectedError(
      "Cannot sign in as the customer's UAMI: the customer is connected for billing only (1-connect-customer --billing-only); bill it with 2-emit-meter --as publisher-app, or connect it with a UAMI (1-connect-customer --force) to act in its tenant",
    );
  }
  return { tenantId: customer.tenantId, clientId: customer.uamiClientId, subject: customer.subject, audience: customer.audience };
}

/** A TokenCredential that hands out one token it was given (a managed app's listTokens token). */
export function staticTokenCredential(token: string, expiresOnTimestamp: number): TokenCredential {
  return { getToken: () => Promise.resolve({ token, expiresOnTimestamp }) };
}
