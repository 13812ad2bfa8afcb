import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DecimalSum, decimalUnits } from "../../lib/core/decimal.mts";
import { aggregateRows, RowAggregator } from "../../lib/metering/aggregate.mts";
import { parseUsageFile, UsageRows, type UsageRow } from "../../lib/metering/usage-file.mts";

const NOW = Date.parse("2026-11-23T12:34:56Z");
const SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const MRG = "mrg-app1-20240101";
const at = (iso: string) => iso;
const row = (line: number, o: Partial<UsageRow>): UsageRow => ({
  line, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 1, effectiveStartTime: at("2026-11-23T10:15:00Z"), ...o,
});

const decimal = suite("DecimalSum");
decimal("adds 0.1 ten thousand times to exactly 1000 (a double gives 999.9999999999062)", () => {
  const sum = new DecimalSum();
  let naive = 0;
  for (let i = 0; i < 10_000; i++) {
    sum.add(0.1);
    naive += 0.1;
  }
  assert.is(sum.toNumber(), 1000);
  assert.is(sum.toDecimalString(), "1000");
  assert.is.not(naive, 1000, "the naive sum is the bug this module exists for");
  assert.is(sum.count, 10_000);
});
decimal("adds decimals with more than 9 fraction digits exactly, and rounds once at the end (half to even)", () => {
  const sum = new DecimalSum();
  sum.add(0.0000000001); // 1e-10: below the fast path
  sum.add(0.0000000004);
  assert.is(sum.units, 50_000_000_000n, "5e-10 exactly, in units of 1e-20");
  assert.is(sum.toDecimalString(), "0", "5e-10 is a half: rounds to the even 0");
  sum.add(0.0000000010);
  assert.is(sum.toDecimalString(), "0.000000002", "1.5e-9 is a half: rounds to the even 2e-9");
  const thirds = new DecimalSum();
  for (let i = 0; i < 3; i++) thirds.add(1 / 3);
  assert.is(thirds.toDecimalString(), "1", "0.3333333333333333 × 3 = 0.9999999999999999, rounded once to 9 places");
});
decimal("keeps exact past 2^53 units of 10^-9 (the fast path's limit)", () => {
  const sum = new DecimalSum();
  for (let i = 0; i < 20; i++) sum.add(999_999.123456789);
  assert.is(sum.toDecimalString(), "19999982.46913578");
});
decimal("decimalUnits() reads the shortest decimal, exponent forms included", () => {
  assert.is(decimalUnits(0.1), 10n ** 19n);
  assert.is(decimalUnits(1e-7), 10n ** 13n);
  assert.is(decimalUnits(20.5), 205n * 10n ** 19n);
  assert.is(decimalUnits(1e21), 10n ** 41n);
  assert.throws(() => decimalUnits(Number.NaN), /not a finite number/);
});
decimal.run();

const agg = suite("aggregateRows()");
agg("sums records per customer (any case), dimension (case-sensitive) and UTC hour, keeping the first line and spelling", () => {
  const records = UsageRows.from([
    row(2, { quantity: 1.5, effectiveStartTime: "2026-11-23T10:05:00Z" }),
    row(3, { quantity: 2, subscriptionId: SUB.toUpperCase(), managedResourceGroup: MRG.toUpperCase(), effectiveStartTime: "2026-11-23T10:59:59Z" }),
    row(4, { quantity: 7, dimension: "CPU", effectiveStartTime: "2026-11-23T10:30:00Z" }),
    row(5, { quantity: 4, effectiveStartTime: "2026-11-23T11:00:00Z" }),
  ]);
  const { rows, problems, summary } = aggregateRows(records, { maxQuantity: 1_000_000 });
  assert.equal(problems, []);
  assert.equal(summary, { records: 4, hours: 2, events: 3 });
  assert.equal(rows.toArray(), [
    { line: 2, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 3.5, effectiveStartTime: "2026-11-23T10:00:00Z" },
    { line: 4, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "CPU", quantity: 7, effectiveStartTime: "2026-11-23T10:00:00Z" },
    { line: 5, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 4, effectiveStartTime: "2026-11-23T11:00:00Z" },
  ]);
});
agg("keeps hours-ago only when every record of the hour gave the same one", () => {
  const { rows } = aggregateRows(UsageRows.from([
    row(2, { effectiveStartTime: "2026-11-23T10:00:00Z", hoursAgo: 2 }),
    row(3, { effectiveStartTime: "2026-11-23T10:00:00Z", hoursAgo: 2 }),
    row(4, { dimension: "mem", effectiveStartTime: "2026-11-23T10:00:00Z", hoursAgo: 2 }),
    row(5, { dimension: "mem", effectiveStartTime: "2026-11-23T10:20:00Z" }),
  ]), { maxQuantity: 1_000_000 });
  assert.is(rows.at(0).hoursAgo, 2);
  assert.is(rows.at(1).hoursAgo, undefined);
});
agg("an hour whose sum passes the ceiling is a problem at its first line, with the count and the sum; no row", () => {
  const { rows, problems } = aggregateRows(UsageRows.from([
    row(7, { quantity: 600_000 }), row(8, { quantity: 500_000.25 }), row(9, { dimension: "mem", quantity: 3 }),
  ]), { maxQuantity: 1_000_000 });
  assert.is(rows.length, 1);
  assert.is(problems.length, 1);
  assert.is(problems[0].line, 7);
  assert.match(problems[0].message, /^2 records for .*cpu, hour 2026-11-23T10:00:00Z sum to 1100000\.25, above the ceiling of 1000000 per event; pass --max-quantity/);
});
agg("a sum below the precision kept is a problem, not a silent loss", () => {
  const { rows, problems } = aggregateRows(UsageRows.from([row(2, { quantity: 1e-10 })]), { maxQuantity: 1_000_000 });
  assert.is(rows.length, 0);
  assert.match(problems[0].message, /sum to less than 10\^-9/);
});
agg("ten thousand records of 0.1 read from a CSV file into the aggregator make one event of exactly 1000", () => {
  const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
  for (let i = 0; i < 10_000; i++) lines.push(`${SUB},${MRG},cpu,0.1,2026-11-23T11:${String(i % 60).padStart(2, "0")}:${String(i % 47).padStart(2, "0")}Z`);
  const sums = new RowAggregator({ maxQuantity: 1_000_000 });
  const parsed = parseUsageFile(lines.join("\n"), { format: "csv", now: NOW, sink: sums });
  assert.equal(parsed.problems, []);
  assert.is(parsed.rows.length, 0, "the rows went to the sink, not into memory");
  const { rows, summary } = sums.finish();
  assert.equal(summary, { records: 10_000, hours: 1, events: 1 });
  assert.is(rows.at(0).quantity, 1000);
});
agg.run();
