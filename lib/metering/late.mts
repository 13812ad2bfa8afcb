// Late raw usage (`2-emit-meter --aggregate`): records for an hour that is already billed, or
// one past the API's 24-hour window. The API keeps one quantity per resource, dimension and
// hour, the first one, so usage that arrives after its hour was billed by another input cannot
// be added to that hour. `reject` (the default) reports it and bills nothing for it; `carry`
// adds it to the earliest later hour of the same customer and dimension that nothing has been
// sent for yet and that is still inside the window, and records the move (a `usage.carry`
// record, written before the target is sent) so a rerun of the same input carries it to the
// same hour, never twice. Usage past the window cannot be billed in any hour: it is reported.
// Pure: the carry records are returned for the run to append.
import { DecimalSum } from "../core/decimal.mts";
import { carryRecord, type CarryRecord } from "../audit/records.mts";
import { customerIndexOf, type CustomerRef } from "../state/customers.mts";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { HOUR_MS, hourStartMs, isInUsageWindow, isoSeconds, usageKey } from "./time.mts";
import { UsageRows, type UsageRow } from "./usage-file.mts";
import type { Ledger } from "./ledger.mts";
import type { EventReport } from "./submission.mts";

export type LatePolicy = "reject" | "carry";
export const LATE_POLICIES: readonly LatePolicy[] = ["reject", "carry"];

export interface LateOutcome {
  /** The rows to plan: the on-time ones, with carried quantities added, and new rows for hours that had none. */
  rows: UsageRows;
  /** Late rows not billed (rejected, past the window, or with no open hour to carry them to): status Late. */
  reports: EventReport[];
  /** The carries to record (append before sending). A carry a rerun finds recorded is used, not recorded again. */
  carries: CarryRecord[];
  /** Every carry this run bills, new or recorded before. */
  carried: Array<{ customer: CustomerRef; dimension: string; from: string; to: string; quantity: number }>;
}

interface _Customer {
  ref: CustomerRef;
  resourceId: string;
  resourceUri?: string;
  planId: string;
}

/**
 * Sorts aggregated rows into on-time and late (see the top of this file). `digest` is the
 * run's input digest: an hour billed by this same input is not late (a rerun), one billed by
 * any other input is. Rows of an hour the ledger holds an open or unknown event for from
 * another input are late too: that hour is taken until it settles.
 */
export function settleLateRows(o: {
  rows: UsageRows;
  ledger: Ledger;
  config: MeteringConfig;
  digest: string;
  now: number;
  policy: LatePolicy;
  /** The raw records' lines of the row at `line` (aggregate.mts), for the carry records. */
  linesOf?: (line: number) => { lines: number[]; records: number } | undefined;
}): LateOutcome {
  const index = customerIndexOf(o.config);
  const customerOf = (row: UsageRow): _Customer => {
    const found = index.find(row);
    const c = found?.customer as CustomerConfig | undefined;
    if (!found || !c?.billing?.resourceId) throw new RangeError(`Cannot settle line ${row.line}: customer ${row.subscriptionId}/${row.managedResourceGroup} is not connected (checkRows refuses such rows)`);
    return { ref: { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup }, resourceId: c.billing.resourceId, resourceUri: c.billing.resourceUri, planId: c.planName ?? "" };
  };
  const keyOf = (c: _Customer, dimension: string, hourMs: number) => usageKey({ resourceId: c.resourceId, dimension, effectiveStartTime: isoSeconds(hourMs) });
  const takenByOther = (key: string) => {
    const entry = o.ledger.get(key);
    return entry !== undefined && entry.state !== "failed" && entry.input?.digest !== o.digest;
  };

  const onTime: Array<{ row: UsageRow; sum?: DecimalSum }> = [];
  const onTimeByKey = new Map<string, number>();
  const late: Array<{ row: UsageRow; customer: _Customer; key: string; hourMs: number }> = [];
  const reports: EventReport[] = [];
  const report = (row: UsageRow, c: _Customer, key: string, message: string) => reports.push({
    key, line: row.line, customer: c.ref, status: "Late", ok: false, sent: false, message,
    event: { resourceId: c.resourceId, ...(c.resourceUri ? { resourceUri: c.resourceUri } : {}), planId: c.planId, dimension: row.dimension, quantity: row.quantity, effectiveStartTime: row.effectiveStartTime },
  } as EventReport);

  for (let i = 0; i < o.rows.length; i++) {
    const row = o.rows.at(i);
    const hourMs = hourStartMs(Date.parse(row.effectiveStartTime));
    const c = customerOf(row);
    const key = keyOf(c, row.dimension, hourMs);
    if (!isInUsageWindow(hourMs, o.now) && hourMs < o.now) {
      report(row, c, key, `the hour is past the API's 24-hour window: this usage cannot be billed in any hour (${row.quantity} from line ${row.line})`);
      continue;
    }
    if (takenByOther(key)) {
      late.push({ row, customer: c, key, hourMs });
      continue;
    }
    onTimeByKey.set(key, onTime.length);
    onTime.push({ row });
  }

  const carries: CarryRecord[] = [];
  const carried: LateOutcome["carried"] = [];
  const currentHour = hourStartMs(o.now);
  for (const l of late) {
    const entry = o.ledger.get(l.key)!;
    const by = `${entry.state === "accepted" ? "billed" : "sent without a final answer"} by another input (recorded ${entry.time})`;
    if (o.policy === "reject") {
      report(l.row, l.customer, l.key, `this hour was ${by}: ${l.row.quantity} cannot be billed for it; pass --late carry to bill it in the next open hour`);
      continue;
    }
    // A rerun of this input: the hour this late usage was carried to before.
    let toKey = o.ledger.carries.get(`${o.digest} ${l.key}`);
    let toHourMs: number | undefined;
    if (toKey !== undefined) toHourMs = Date.parse(toKey.slice(toKey.lastIndexOf("|") + 1));
    else {
      for (let h = l.hourMs + HOUR_MS; h <= currentHour; h += HOUR_MS) {
        const k = keyOf(l.customer, l.row.dimension, h);
        // Free: nothing sent for it yet (a refusal does not hold an hour). This input's own row
        // for it, not sent yet, is free too: the carried usage is added to it.
        const entry = o.ledger.get(k);
        if (entry === undefined || entry.state === "failed") {
          toKey = k;
          toHourMs = h;
          break;
        }
      }
    }
    if (toKey === undefined || toHourMs === undefined || Number.isNaN(toHourMs)) {
      report(l.row, l.customer, l.key, `this hour was ${by}, and every later hour of ${l.row.dimension} in the window has an event already: ${l.row.quantity} cannot be billed`);
      continue;
    }
    const to = isoSeconds(toHourMs);
    const at = onTimeByKey.get(toKey);
    if (at !== undefined) (onTime[at].sum ??= _sumOf(onTime[at].row.quantity)).add(l.row.quantity);
    else {
      onTimeByKey.set(toKey, onTime.length);
      const { hoursAgo: _relative, ...absolute } = l.row;
      onTime.push({ row: { ...absolute, effectiveStartTime: to }, sum: _sumOf(l.row.quantity) });
    }
    carried.push({ customer: l.customer.ref, dimension: l.row.dimension, from: l.row.effectiveStartTime, to, quantity: l.row.quantity });
    if (!o.ledger.carries.has(`${o.digest} ${l.key}`)) {
      const lines = o.linesOf?.(l.row.line) ?? { lines: [l.row.line], records: 1 };
      carries.push(carryRecord({
        customer: l.customer.ref, digest: o.digest, fromKey: l.key, toKey, dimension: l.row.dimension,
        from: l.row.effectiveStartTime, to, quantity: l.row.quantity, lines: lines.lines.slice(0, 100), records: lines.records,
      }));
    }
  }

  const rows = new UsageRows();
  for (const { row, sum } of onTime) rows.push(sum ? { ...row, quantity: sum.toNumber() } : row);
  return { rows, reports, carries, carried };
}

function _sumOf(quantity: number): DecimalSum {
  const sum = new DecimalSum();
  sum.add(quantity);
  return sum;
}
