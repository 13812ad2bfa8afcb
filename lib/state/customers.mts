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

/** The customers of a config as findCustomer reads them. */
type _CustomersOf = { customers?: Record<string, Record<string, unknown> | undefined> };

/**
 * Finds a customer entry in config (any case); the keys are returned as the file spells them.
 * The first spelling in the file wins when two differ only in case. It scans the file's keys:
 * for more than a few lookups in one config, build a `CustomerIndex` once.
 */
export function findCustomer(config: _CustomersOf, options: CustomerRef): FoundCustomer | undefined {
  const customers = config.customers ?? {};
  const sub = Object.keys(customers).find((k) => _same(k, options.subscriptionId));
  if (sub === undefined) return undefined;
  const groups = customers[sub] ?? {};
  const mrg = Object.keys(groups).find((k) => _same(k, options.managedResourceGroup));
  if (mrg === undefined) return undefined;
  return { subscriptionId: sub, managedResourceGroup: mrg, customer: groups[mrg] };
}

/**
 * findCustomer for many lookups: every customer of a config in one map by `customerKey`, built
 * once (a run of 4,000 customers looks each up per row and per batch; a scan each time made
 * planning quadratic). The first spelling of a (subscription, group) pair in the file wins; a
 * group filed under a second spelling of its subscription is found too. A snapshot: an entry
 * added to the config later is not in it.
 *
 * @example
 * const index = new CustomerIndex(config);
 * index.find({ subscriptionId: "AB-CD", managedResourceGroup: "my-rg" })?.customer
 */
export class CustomerIndex {
  readonly #byKey = new Map<string, FoundCustomer>();

  constructor(config: _CustomersOf) {
    for (const [subscriptionId, groups] of Object.entries(config.customers ?? {})) {
      for (const [managedResourceGroup, customer] of Object.entries(groups ?? {})) {
        const key = customerKey({ subscriptionId, managedResourceGroup });
        if (!this.#byKey.has(key)) this.#byKey.set(key, { subscriptionId, managedResourceGroup, customer });
      }
    }
  }

  /** The entry of `ref` (any case), under the keys as the file spells them. */
  find(ref: CustomerRef): FoundCustomer | undefined {
    return this.#byKey.get(customerKey(ref));
  }
}

const _indexes = new WeakMap<object, CustomerIndex>();

/**
 * The CustomerIndex of a config, built on first use and kept while its `customers` object
 * lives: checking the rows, planning and sending of one run share one map. Config is never
 * changed in place (withCustomer and withoutCustomer return copies with a new `customers`).
 */
export function customerIndexOf(config: _CustomersOf): CustomerIndex {
  const customers = config.customers;
  if (!customers) return new CustomerIndex(config);
  let index = _indexes.get(customers);
  if (!index) _indexes.set(customers, index = new CustomerIndex(config));
  return index;
}
