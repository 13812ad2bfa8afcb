// Adopting a customer an offer template connected at purchase time (templates/offer/
// metering-identity.bicep): the managed resource group already holds a UAMI whose federated
// credential trusts this ISV's issuer, so 1-connect-customer --adopt only reads it, checks it
// matches exactly what this ISV signs, and builds the config entry. It deploys nothing.
import { IdentityMismatchError } from "../core/errors.mts";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { changeRecord, type ChangeRecord } from "../audit/records.mts";
import type { ArmOptions } from "../azure/managed-apps.mts";
import { defaultSubject, FEDERATION_AUDIENCE, UAMI_NAME } from "./connect.mts";
import { listFederatedCredentials, listUserAssignedIdentities, type FederatedCredential, type UserAssignedIdentity } from "./uami.mts";

/** How many managed resource groups 1-list-customers looks into at once. */
const LOOKUP_CONCURRENCY = 8;

export interface OfferIdentity {
  uami: UserAssignedIdentity;
  fic: FederatedCredential;
}

/**
 * The UAMIs of the managed resource group with their federated credentials, the one named
 * metering-submission-uami first (the offer module's default name).
 */
async function _identitiesOf(options: { subscriptionId: string; managedResourceGroup: string } & ArmOptions): Promise<OfferIdentity[]> {
  const uamis = await listUserAssignedIdentities({ ...options, resourceGroup: options.managedResourceGroup });
  uamis.sort((a, b) => Number(b.name === UAMI_NAME) - Number(a.name === UAMI_NAME));
  const out: OfferIdentity[] = [];
  for (const uami of uamis) for (const fic of await listFederatedCredentials({ ...options, uamiId: uami.id })) out.push({ uami, fic });
  return out;
}

/** The MRG's UAMI and federated credential that trust `issuer` (exact, case-sensitive), or undefined. */
export async function findOfferIdentity(
  options: { subscriptionId: string; managedResourceGroup: string; issuer: string } & ArmOptions,
): Promise<OfferIdentity | undefined> {
  return (await _identitiesOf(options)).find((x) => x.fic.issuer === options.issuer);
}

/**
 * For each managed application not in config yet, the offer identity that trusts `issuer`
 * (1-list-customers' "connectable (offer template)"), keyed `<subscription>/<mrg>` in lower case;
 * `failed` holds the groups that could not be read (one MRG the ISV cannot read does not stop the list).
 */
export async function findConnectableOfferIdentities(
  apps: Array<{ subscriptionId: string; managedResourceGroup: string }>,
  options: { issuer: string } & ArmOptions,
): Promise<{ found: Map<string, OfferIdentity>; failed: Map<string, string> }> {
  const found = new Map<string, OfferIdentity>();
  const failed = new Map<string, string>();
  const queue = [...apps];
  const worker = async () => {
    for (let app = queue.shift(); app; app = queue.shift()) {
      const key = `${app.subscriptionId}/${app.managedResourceGroup}`.toLowerCase();
      try {
        const identity = await findOfferIdentity({ ...options, ...app });
        if (identity) found.set(key, identity);
      } catch (error) {
        failed.set(key, String((error as Error)?.message ?? error).split("\n")[0]);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, queue.length) }, worker));
  return { found, failed };
}

/** What differs between a federated credential and what this ISV signs, as one phrase; undefined when it matches. */
export function offerIdentityMismatch(fic: FederatedCredential, expected: { issuer: string; subject: string; audience: string }): string | undefined {
  const diffs: string[] = [];
  if (fic.issuer !== expected.issuer) diffs.push(`issuer ${JSON.stringify(fic.issuer)} (this ISV's is ${JSON.stringify(expected.issuer)})`);
  if (fic.subject !== expected.subject) diffs.push(`subject ${JSON.stringify(fic.subject)} (this ISV signs ${JSON.stringify(expected.subject)})`);
  if (fic.audiences.length !== 1 || fic.audiences[0] !== expected.audience) diffs.push(`audiences ${JSON.stringify(fic.audiences)} (expected [${JSON.stringify(expected.audience)}])`);
  return diffs.length ? diffs.join(", ") : undefined;
}

/**
 * Reads the offer template's UAMI and federated credential and the managed application's billing
 * ids, checks issuer, subject and audience match exactly, and returns the config entry (not saved).
 * A mismatch or a missing identity is an IdentityMismatchError; `recordChange` gets one customer.adopt
 * change record once the entry is built (nothing changes in Azure: what was adopted, and from where).
 */
export async function adoptCustomer(options: {
  config: MeteringConfig;
  subscriptionId: string;
  managedResourceGroup: string;
  onProgress?: (text: string) => void;
  recordChange?: (record: ChangeRecord) => Promise<void>;
} & ArmOptions): Promise<CustomerConfig> {
  const { subscriptionId, managedResourceGroup } = options;
  const arm: ArmOptions & { subscriptionId: string; managedResourceGroup: string } = {
    subscriptionId, managedResourceGroup, command: options.command, env: options.env, azRest: options.azRest, record: options.record,
  };
  const where = `${subscriptionId}/${managedResourceGroup}`;
  const idp = options.config.publisher.idp!;
  const expected = { issuer: idp.issuer, subject: defaultSubject(options.config), audience: FEDERATION_AUDIENCE };
  const { getBillableManagedApp } = await import("../azure/managed-apps.mts");
  options.onProgress?.(`Reading the managed application of ${where}`);
  const app = await getBillableManagedApp(arm);
  options.onProgress?.(`Reading the managed identities of ${where} and their federated credentials`);
  const identities = await _identitiesOf(arm);
  if (identities.length === 0) {
    throw new IdentityMismatchError(`Cannot adopt ${where}: its managed resource group holds no user-assigned identity with a federated credential (the offer template did not connect it); connect it without --adopt`);
  }
  const trusting = identities.find((x) => x.fic.issuer === expected.issuer) ?? identities[0];
  const mismatch = offerIdentityMismatch(trusting.fic, expected);
  if (mismatch) {
    throw new IdentityMismatchError(`Cannot adopt ${where}: the federated credential ${trusting.fic.name} of ${trusting.uami.name} has ${mismatch}; fix the offer template's parameters, or connect without --adopt`);
  }
  const { uami, fic } = trusting;
  const customer = {
    uamiClientId: uami.clientId,
    tenantId: uami.tenantId,
    subject: fic.subject,
    audience: FEDERATION_AUDIENCE,
    uamiName: uami.name,
    billing: { resourceId: app.resourceUsageId, resourceUri: app.id },
    planName: app.planName,
    uamiId: uami.id,
    uamiPrincipalId: uami.principalId,
    adopted: { from: "offer-template", ficName: fic.name },
    // 2-emit-meter retries Entra's propagation errors for a while after this time.
    connectedAt: new Date().toISOString(),
  } as CustomerConfig;
  await options.recordChange?.(changeRecord({
    operation: "customer.adopt", customer: { subscriptionId, managedResourceGroup }, targets: [uami.id, fic.id], outcome: "succeeded",
    detail: { deployed: false, issuer: fic.issuer, subject: fic.subject, audience: FEDERATION_AUDIENCE, uamiClientId: uami.clientId, uamiPrincipalId: uami.principalId },
  }));
  return customer;
}
