// Shared fixtures for the ledger and submission tests: a frozen clock, a config with three
// connected customers, usage events, and audit records shaped as lib/metering/submission.mts writes them.
import type { AuditRecord } from "../../lib/audit/log.mts";
import type { MeteringConfig } from "../../lib/state/config.mts";
import type { EventResult } from "../../lib/metering/ledger.mts";
import type { CustomerRef } from "../../lib/state/customers.mts";
import type { UsageEvent } from "../../lib/metering/api.mts";

export const NOW = Date.parse("2026-11-23T12:34:56Z");
export const HOUR_MS = 3_600_000;

/** Start of the UTC hour `h` hours before NOW, as the API wants it. */
export function hoursAgo(h: number): string {
  return new Date(Math.floor(NOW / HOUR_MS) * HOUR_MS - h * HOUR_MS).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export interface TestCustomer extends CustomerRef {
  resourceId: string;
  resourceUri: string;
  planName: string;
}

function _customer(n: number): TestCustomer {
  const subscriptionId = `0b1f6471-1bf0-4dda-aec3-cb9272f0959${n}`;
  const managedResourceGroup = `mrg-app${n}-20240101`;
  return {
    subscriptionId,
    managedResourceGroup,
    resourceId: `5555555${n}-5555-4555-8555-55555555555${n}`,
    resourceUri: `/subscriptions/${subscriptionId}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app${n}`,
    planName: `plan${n}`,
  };
}

export const CUSTOMERS: TestCustomer[] = [1, 2, 3, 4, 5].map(_customer);
export const [A, B, C] = CUSTOMERS;

/** A config with the given customers connected (default: all of CUSTOMERS). */
export function configWith(customers: TestCustomer[] = CUSTOMERS): MeteringConfig {
  const config: MeteringConfig = { publisher: {}, customers: {} };
  for (const c of customers) {
    config.customers[c.subscriptionId] ??= {};
    config.customers[c.subscriptionId][c.managedResourceGroup] = {
      uamiClientId: "33333333-3333-4333-8333-333333333333",
      tenantId: "44444444-4444-4444-8444-444444444444",
      subject: "s",
      audience: "api://AzureADTokenExchange",
      uamiName: "metering-submission-uami",
      billing: { resourceId: c.resourceId, resourceUri: c.resourceUri },
      planName: c.planName,
    };
  }
  return config;
}

export function ref(c: TestCustomer): CustomerRef {
  return { subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup };
}

export function usageEvent(c: TestCustomer, dimension: string, quantity: number, effectiveStartTime = hoursAgo(1)): UsageEvent {
  return { resourceId: c.resourceId, resourceUri: c.resourceUri, planId: c.planName, dimension, quantity, effectiveStartTime };
}

const URL_BASE = "https://marketplaceapi.example/api";

/** An intent record: a batch body for several events, a single body for one (unless `batch`). */
export function intentRecord(id: string, customer: CustomerRef, events: UsageEvent[], options: { batch?: boolean; time?: string } = {}): AuditRecord {
  const batch = options.batch ?? events.length > 1;
  return {
    time: options.time ?? new Date(NOW).toISOString(),
    operation: batch ? "batchUsageEvent.intent" : "usageEvent.intent",
    id,
    customer,
    request: { method: "POST", url: `${URL_BASE}/${batch ? "batchUsageEvent" : "usageEvent"}`, headers: {}, body: batch ? { request: events } : events[0] },
  };
}

/** An outcome record with an `events` array, as runSubmission writes it. */
export function outcomeRecord(id: string, customer: CustomerRef, events: EventResult[], options: { batch?: boolean; time?: string } = {}): AuditRecord {
  return { time: options.time ?? new Date(NOW).toISOString(), operation: options.batch === false ? "usageEvent" : "batchUsageEvent", id, customer, events };
}
