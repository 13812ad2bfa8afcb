// Customers divided among runners: a customer's shard is a stable hash of its subscription and
// managed resource group (case-insensitive, as Azure names them), so every runner of every
// machine puts it in the same shard for the same shard count. Each shard is sent under its
// own lock (`shard-<k>-of-<n>`, a blob lease in a shared ledger), so no customer is sent by
// two runners at once. Pure.
import { createHash } from "node:crypto";
import type { CustomerRef } from "../state/customers.mts";
import { UsageRows } from "./usage-file.mts";

export const MAX_SHARDS = 1024;

/** The shard (0-based) of a customer among `shards`. */
export function shardOf(customer: CustomerRef, shards: number): number {
  if (shards <= 1) return 0;
  const key = `${customer.subscriptionId.toLowerCase()}/${customer.managedResourceGroup.toLowerCase()}`;
  return createHash("sha256").update(key).digest().readUInt32BE(0) % shards;
}

/**
 * shardOf for one shard count, remembered per customer: a runner asks for the shard of every
 * row and event of every shard it takes, and a hash each time was a tenth of its time.
 */
export function shardFinder(shards: number): (customer: CustomerRef) => number {
  const known = new Map<string, number>();
  return (customer) => {
    const key = `${customer.subscriptionId}/${customer.managedResourceGroup}`;
    let shard = known.get(key);
    if (shard === undefined) known.set(key, shard = shardOf(customer, shards));
    return shard;
  };
}

/** The rows of each shard (index k: shard k's rows, in input order), in one pass over the input. */
export function rowsByShard(rows: UsageRows, shards: number, shardOfCustomer: (customer: CustomerRef) => number = shardFinder(shards)): UsageRows[] {
  const parts = Array.from({ length: shards }, () => new UsageRows());
  for (let i = 0; i < rows.length; i++) {
    const customer = { subscriptionId: rows.fieldAt(i, "subscriptionId"), managedResourceGroup: rows.fieldAt(i, "managedResourceGroup") };
    parts[shardOfCustomer(customer)].push(rows.at(i));
  }
  return parts;
}

/** The lock name of a shard, 1-based as a person counts: `shard-1-of-4`. */
export function shardLockName(shard: number, shards: number): string {
  return `shard-${shard + 1}-of-${shards}`;
}
