// Customers divided among runners: a customer's shard is a stable hash of its subscription and
// managed resource group (case-insensitive, as Azure names them), so every runner of every
// machine puts it in the same shard for the same shard count. Each shard is sent under its
// own lock (`shard-<k>-of-<n>`, a blob lease in a shared ledger), so no customer is sent by
// two runners at once. Pure.
import { createHash } from "node:crypto";
import type { CustomerRef } from "../state/customers.mts";

export const MAX_SHARDS = 1024;

/** The shard (0-based) of a customer among `shards`. */
export function shardOf(customer: CustomerRef, shards: number): number {
  if (shards <= 1) return 0;
  const key = `${customer.subscriptionId.toLowerCase()}/${customer.managedResourceGroup.toLowerCase()}`;
  return createHash("sha256").update(key).digest().readUInt32BE(0) % shards;
}

/** The lock name of a shard, 1-based as a person counts: `shard-1-of-4`. */
export function shardLockName(shard: number, shards: number): string {
  return `shard-${shard + 1}-of-${shards}`;
}
