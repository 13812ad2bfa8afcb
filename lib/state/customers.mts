// Who a customer is: a subscription and a managed resource group, both compared without case,
// as Azure compares subscription ids and resource group names. The one place that decides
// whether two references name the same customer, the key that groups a customer's events, and
// the lookup of a customer in config.json (which returns the keys as the file spells them).

/** A customer as config.json keys it: customers[subscriptionId][managedResourceGroup]. */
export interface CustomerRef {
  subscriptionId: string;
  managedResourceGroup: string;
}

/** A customer entry found in config, under the keys as the file spells them. */
export interface FoundCustomer extends CustomerRef {
  /** The entry as stored: not checked (config.mts getCustomer checks it). */
  customer: unknown;
}

const _same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * Lower-cased "subscription/mrg": one group of events, one token.
 * @example customerKey({ subscriptionId: "AB-CD", managedResourceGroup: "My-RG" }) // "ab-cd/my-rg"
 */
export function customerKey(c: CustomerRef): string {
  return `${c.subscriptionId.toLowerCase()}/${c.managedResourceGroup.toLowerCase()}`;
}

/** Whether `a` (an audit record's customer, say; maybe incomplete) names `customer`. */
export function isSameCustomer(a: Partial<CustomerRef> | undefined, customer: CustomerRef): boolean {
  return typeof a?.subscriptionId === "string" && typeof a.managedResourceGroup === "string" &&
    _same(a.subscriptionId, customer.subscriptionId) && _same(a.managedResourceGroup, customer.managedResourceGroup);
}

/**
 * Finds a customer entry in config (any case); the keys are returned as the file spells them.
 * The first spelling in the file wins when two differ only in case.
 */
export function findCustomer(
  config: { customers?: Record<string, Record<string, unknown> | undefined> },
  options: CustomerRef,
): FoundCustomer | undefined {
  const customers = config.customers ?? {};
  const sub = Object.keys(customers).find((k) => _same(k, options.subscriptionId));
  if (sub === undefined) return undefined;
  const groups = customers[sub] ?? {};
  const mrg = Object.keys(groups).find((k) => _same(k, options.managedResourceGroup));
  if (mrg === undefined) return undefined;
  return { subscriptionId: sub, managedResourceGroup: mrg, customer: groups[mrg] };
}
