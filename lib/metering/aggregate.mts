// Raw usage records summed into what the API takes: one quantity per customer, dimension and
// UTC hour (the duplicate rule's key, lib/metering/time.mts). Records may be many per hour, at
// any instant, in any order; each was checked on its own line before it gets here. Sums are
// exact (lib/core/decimal.mts) and rounded once, at the end. Pure.
import { DecimalSum } from "../core/decimal.mts";
import { customerKey } from "../state/customers.mts";
import { HOUR_MS, hourOf } from "./time.mts";
import { UsageRows, type RowProblem, type UsageRow } from "./usage-file.mts";

/** What an aggregation made of its records. */
export interface Aggregated {
  /** One row per customer × dimension × hour, in the order each first appeared; `line` is that first record's line. */
  rows: UsageRows;
  /** Sums an event may not carry (above the ceiling), at the line of the hour's first record. */
  problems: RowProblem[];
  /** Records read, distinct UTC hours, and events (rows) made. */
  summary: { records: number; hours: number; events: number };
  /** The lines of the records the row at `line` (its first record's) sums (the first 100), and how many there were. */
  linesOf(line: number): { lines: number[]; records: number } | undefined;
}

/** Lines a group keeps for messages and carry records. */
const LINES_KEPT = 100;

interface _Group {
  first: UsageRow;
  lines: number[];
  sum: DecimalSum;
  /** The hours-ago all its records gave; -1 when one gave an absolute time or another hours-ago. */
  hoursAgo: number;
  hour: string;
}

/**
 * Sums records pushed one by one (the usage parser's sink, so a million raw records never sit in
 * memory: only one group per customer × dimension × hour does) per customer (any case: Azure's
 * ids are case-insensitive; the first spelling is kept), dimension (case-sensitive, as the API
 * compares it) and UTC hour. `finish()` makes the events: an hour whose sum passes `maxQuantity`
 * is a problem naming how many records made it, and no event.
 *
 * @example
 * const sums = new RowAggregator({ maxQuantity: 1_000_000 });
 * for (const record of records) sums.push(record);
 * sums.finish().summary // { records: 3, hours: 1, events: 1 }
 */
export class RowAggregator {
  readonly #maxQuantity: number;
  /** By (customer × dimension pair) × 2^21 + hours since 1970 (< 2^21 until 2209): one exact number, a fast Map key. */
  readonly #groups = new Map<number, _Group>();
  /** A customer's spelling → its pairs by dimension; spellings of one customer share them. */
  readonly #dimensionsOf = new Map<string, Map<string, number>>();
  readonly #byCustomerKey = new Map<string, Map<string, number>>();
  /** The hour of a time's `YYYY-MM-DDTHH` prefix. */
  readonly #hourOf = new Map<string, number>();
  #pairs = 0;
  #records = 0;

  constructor(options: { maxQuantity: number }) {
    this.#maxQuantity = options.maxQuantity;
  }

  push(record: UsageRow): void {
    this.#records++;
    // Rows repeat a few spellings of each customer: lower-case each spelling once.
    const spelling = `${record.subscriptionId}/${record.managedResourceGroup}`;
    let dimensions = this.#dimensionsOf.get(spelling);
    if (dimensions === undefined) {
      const key = customerKey(record);
      dimensions = this.#byCustomerKey.get(key);
      if (dimensions === undefined) this.#byCustomerKey.set(key, dimensions = new Map());
      this.#dimensionsOf.set(spelling, dimensions);
    }
    let pair = dimensions.get(record.dimension);
    if (pair === undefined) dimensions.set(record.dimension, pair = this.#pairs++);
    const time = record.effectiveStartTime;
    const prefix = hourOf(time).slice(0, 13);
    let hour = this.#hourOf.get(prefix);
    if (hour === undefined) this.#hourOf.set(prefix, hour = Date.parse(`${prefix}:00:00Z`) / HOUR_MS);
    const key = pair * 2 ** 21 + hour;
    const hoursAgo = record.hoursAgo ?? -1;
    let group = this.#groups.get(key);
    if (group === undefined) this.#groups.set(key, group = { first: record, lines: [], sum: new DecimalSum(), hoursAgo, hour: `${prefix}:00:00Z` });
    else if (group.hoursAgo !== hoursAgo) group.hoursAgo = -1;
    if (group.lines.length < LINES_KEPT) group.lines.push(record.line);
    group.sum.add(record.quantity);
  }

  finish(): Aggregated {
    const rows = new UsageRows();
    const problems: RowProblem[] = [];
    const made = new Map<number, _Group>();
    for (const group of this.#groups.values()) {
      const { first, sum, hoursAgo, hour } = group;
      const what = `${sum.count} records for ${first.subscriptionId}/${first.managedResourceGroup}, ${first.dimension}, hour ${hour}`;
      const quantity = sum.toNumber();
      if (quantity > this.#maxQuantity) {
        problems.push({ line: first.line, message: `${what} sum to ${sum.toDecimalString()}, above the ceiling of ${this.#maxQuantity} per event; pass --max-quantity to allow more` });
        continue;
      }
      if (quantity <= 0) {
        // Every record is > 0, but their sum can round to 0 at the precision kept; the API takes only quantity > 0.
        problems.push({ line: first.line, message: `${what} sum to less than 10^-9, the precision kept: no event can carry it` });
        continue;
      }
      made.set(first.line, group);
      rows.push({
        line: first.line, subscriptionId: first.subscriptionId, managedResourceGroup: first.managedResourceGroup,
        dimension: first.dimension, quantity, effectiveStartTime: hour, ...(hoursAgo >= 0 ? { hoursAgo } : {}),
      });
    }
    return {
      rows, problems, summary: { records: this.#records, hours: new Set([...this.#groups.values()].map((g) => g.hour)).size, events: rows.length },
      linesOf: (line) => {
        const group = made.get(line);
        return group && { lines: group.lines, records: group.sum.count };
      },
    };
  }
}

/** Sums stored rows (see RowAggregator). */
export function aggregateRows(records: Iterable<UsageRow>, options: { maxQuantity: number }): Aggregated {
  const sums = new RowAggregator(options);
  for (const record of records) sums.push(record);
  return sums.finish();
}
