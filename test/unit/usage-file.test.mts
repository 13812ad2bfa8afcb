import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createHash } from "node:crypto";
import { checkRow, checkRows, formatOfPath, parseUsageFile, readUsageFile, sniffFormat, splitCsvLine, UsageRows, type ParsedUsageFile, type UsageRow } from "../../lib/metering/usage-file.mts";
import { USAGE_WINDOW_MS } from "../../lib/metering/time.mts";
import { MAX_DIMENSION_ID_LENGTH } from "../../lib/core/validate.mts";
import { configWith, CUSTOMERS } from "./_usage-support.mts";

// Frozen clock: every time in this file is relative to NOW, never to the real clock.
const NOW = Date.parse("2026-11-23T12:34:56Z");
const SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const MRG = "mrg-app1-20240101";
const HEADER = "subscription,managed-resource-group,dimension,quantity,hours-ago";

const iso = (ms: number) => new Date(ms).toISOString();
// Rows and problems as plain data (the rows come back as UsageRows).
const plain = (parsed: ParsedUsageFile) => ({ rows: parsed.rows.toArray(), problems: parsed.problems });
const csv = (text: string, now = NOW) => plain(parseUsageFile(text, { format: "csv", now }));
const jsonl = (text: string, now = NOW) => plain(parseUsageFile(text, { format: "jsonl", now }));

const split = suite("splitCsvLine()");
split("splits on commas and keeps empty fields", () => {
  assert.equal(splitCsvLine("a,b,,d"), ["a", "b", "", "d"]);
  assert.equal(splitCsvLine("a,"), ["a", ""]);
  assert.equal(splitCsvLine(""), [""]);
});
split("unquotes quoted fields, keeps commas inside them and turns \"\" into a quote", () => {
  assert.equal(splitCsvLine('a,"b, c","say ""hi""",d'), ["a", "b, c", 'say "hi"', "d"]);
  assert.equal(splitCsvLine('""'), [""]);
  assert.equal(splitCsvLine('"x",'), ["x", ""]);
});
split("allows spaces between a closing quote and the comma", () => {
  assert.equal(splitCsvLine('"a"  ,b'), ["a", "b"]);
});
split("returns undefined for an unterminated quote or text after a closing quote", () => {
  assert.is(splitCsvLine('a,"b'), undefined);
  assert.is(splitCsvLine('"a""'), undefined);
  assert.is(splitCsvLine('"a"x,b'), undefined);
});
split.run();

const check = suite("checkRow()");
const good = { subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: "2.5", hoursAgo: "1" };
check("resolves hours-ago to the start of that UTC hour and keeps the line number", () => {
  const { row, problems } = checkRow(good, { line: 7, now: NOW });
  assert.equal(problems, []);
  assert.equal(row, { line: 7, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 2.5, effectiveStartTime: "2026-11-23T11:00:00Z", hoursAgo: 1 });
});
check("trims string values and accepts numbers", () => {
  const { row } = checkRow({ subscriptionId: ` ${SUB} `, managedResourceGroup: ` ${MRG}`, dimension: " cpu ", quantity: 3, hoursAgo: 0 }, { line: 1, now: NOW });
  assert.equal(row, { line: 1, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 3, effectiveStartTime: "2026-11-23T12:00:00Z", hoursAgo: 0 });
});
check("reports every problem of a row at once and returns no row", () => {
  const { row, problems } = checkRow({ subscriptionId: "nope", managedResourceGroup: "bad/rg", dimension: "a\u0001b", quantity: "0" }, { line: 1, now: NOW });
  assert.is(row, undefined);
  assert.equal(problems, [
    'subscription "nope" is not a GUID',
    'managed resource group "bad/rg" is not a valid resource group name',
    'dimension "a\\u0001b": it holds control characters; expected the dimension id from Partner Center',
    'quantity "0": expected a decimal number greater than 0',
    "hours-ago or effective-start-time is missing",
  ]);
});
check("names each missing required field", () => {
  const { problems } = checkRow({ hoursAgo: "1", dimension: "  " }, { line: 1, now: NOW });
  assert.equal(problems, ["subscriptionId is missing", "managedResourceGroup is missing", "dimension is missing", "quantity is missing"]);
});
check("accepts decimal quantities with a sign, a leading dot or an exponent", () => {
  for (const [text, value] of [["+2", 2], [".5", 0.5], ["1e3", 1000], ["2.", 2], ["0.001", 0.001]] as const) {
    assert.is(checkRow({ ...good, quantity: text }, { line: 1, now: NOW }).row?.quantity, value, text);
  }
});
check("refuses zero, negative and non-decimal quantities", () => {
  for (const q of ["0", "-1", "abc", "0x10", "Infinity", "NaN", "1.5.1"]) {
    const { row, problems } = checkRow({ ...good, quantity: q }, { line: 1, now: NOW });
    assert.is(row, undefined, q);
    assert.equal(problems, [`quantity ${JSON.stringify(q)}: expected a decimal number greater than 0`], q);
  }
  assert.equal(checkRow({ ...good, quantity: -2 }, { line: 1, now: NOW }).problems, ['quantity "-2": expected a decimal number greater than 0']);
  assert.equal(checkRow({ ...good, quantity: 0 }, { line: 1, now: NOW }).problems, ['quantity "0": expected a decimal number greater than 0']);
});
check("says to use a dot for a decimal comma", () => {
  assert.equal(checkRow({ ...good, quantity: "1,5" }, { line: 1, now: NOW }).problems, ['quantity "1,5": use a dot: 1.5']);
  assert.equal(checkRow({ ...good, quantity: "12,75" }, { line: 1, now: NOW }).problems, ['quantity "12,75": use a dot: 12.75']);
});
check("refuses a quantity above the ceiling, 1,000,000 unless maxQuantity says otherwise", () => {
  const ceiling = 'above the ceiling of 1000000 per event (a unit mix-up?); pass --max-quantity to allow more';
  assert.equal(checkRow({ ...good, quantity: "1e308" }, { line: 1, now: NOW }).problems, [`quantity "1e308": ${ceiling}`]);
  assert.equal(checkRow({ ...good, quantity: "1e999" }, { line: 1, now: NOW }).problems, [`quantity "1e999": ${ceiling}`], "too large for a double");
  assert.equal(checkRow({ ...good, quantity: 1e308 }, { line: 1, now: NOW }).problems, [`quantity "1e+308": ${ceiling}`], "a JSON number");
  assert.equal(checkRow({ ...good, quantity: "1000000.5" }, { line: 1, now: NOW }).problems, [`quantity "1000000.5": ${ceiling}`]);
  assert.is(checkRow({ ...good, quantity: "1000000" }, { line: 1, now: NOW }).row?.quantity, 1_000_000, "the ceiling itself is allowed");
  assert.is(checkRow({ ...good, quantity: "5e6" }, { line: 1, now: NOW, maxQuantity: 1e7 }).row?.quantity, 5e6);
  assert.equal(checkRow({ ...good, quantity: "11" }, { line: 1, now: NOW, maxQuantity: 10 }).problems,
    ['quantity "11": above the ceiling of 10 per event (a unit mix-up?); pass --max-quantity to allow more']);
});
check("refuses a dimension that cannot be a Partner Center dimension id", () => {
  const long = "d".repeat(MAX_DIMENSION_ID_LENGTH + 1);
  assert.equal(checkRow({ ...good, dimension: "cpu\thours" }, { line: 1, now: NOW }).problems,
    ['dimension "cpu\\thours": it holds control characters; expected the dimension id from Partner Center']);
  assert.equal(checkRow({ ...good, dimension: "cpu\u0085" }, { line: 1, now: NOW }).problems,
    ['dimension "cpu\u0085": it holds control characters; expected the dimension id from Partner Center'], "a C1 control character");
  assert.equal(checkRow({ ...good, dimension: long }, { line: 1, now: NOW }).problems,
    [`dimension "${long}": it is ${MAX_DIMENSION_ID_LENGTH + 1} characters long, more than ${MAX_DIMENSION_ID_LENGTH}; expected the dimension id from Partner Center`]);
  assert.is(checkRow({ ...good, dimension: "d".repeat(MAX_DIMENSION_ID_LENGTH) }, { line: 1, now: NOW }).row?.dimension.length, MAX_DIMENSION_ID_LENGTH);
  assert.is(checkRow({ ...good, dimension: "Storage GB" }, { line: 1, now: NOW }).row?.dimension, "Storage GB", "spaces inside are left to the API");
});
check("keeps hours-ago on a relative row, and none on an absolute one", () => {
  assert.is(checkRow({ ...good, hoursAgo: "5" }, { line: 1, now: NOW }).row?.hoursAgo, 5);
  const absolute = checkRow({ ...good, hoursAgo: undefined, effectiveStartTime: "2026-11-23T10:15:00Z" }, { line: 1, now: NOW }).row!;
  assert.not.ok("hoursAgo" in absolute);
});
check("takes hours-ago only as an integer from 0 to 23", () => {
  assert.is(checkRow({ ...good, hoursAgo: "23" }, { line: 1, now: NOW }).row?.effectiveStartTime, "2026-11-22T13:00:00Z");
  for (const h of ["24", "-1", "1.5", "1e1", "x", "100"]) {
    assert.equal(checkRow({ ...good, hoursAgo: h }, { line: 1, now: NOW }).problems, [`hours-ago ${JSON.stringify(h)} is not an integer from 0 to 23`], h);
  }
});
check("refuses both hours-ago and effective-start-time, and neither", () => {
  assert.equal(checkRow({ ...good, effectiveStartTime: "2026-11-23T10:00:00Z" }, { line: 1, now: NOW }).problems, ["give either hours-ago or effective-start-time, not both"]);
  assert.equal(checkRow({ ...good, hoursAgo: "", effectiveStartTime: " " }, { line: 1, now: NOW }).problems, ["hours-ago or effective-start-time is missing"]);
});
check("takes an ISO time with Z or an offset and writes it in UTC without milliseconds", () => {
  const at = (t: string) => checkRow({ ...good, hoursAgo: undefined, effectiveStartTime: t }, { line: 1, now: NOW });
  assert.is(at("2026-11-23T10:15:00Z").row?.effectiveStartTime, "2026-11-23T10:15:00Z");
  assert.is(at("2026-11-23T12:15:00+02:00").row?.effectiveStartTime, "2026-11-23T10:15:00Z");
  assert.is(at("2026-11-23T10:15Z").row?.effectiveStartTime, "2026-11-23T10:15:00Z");
  assert.is(at("2026-11-23T10:15:00.999Z").row?.effectiveStartTime, "2026-11-23T10:15:00Z");
});
check("refuses an ISO time without a zone, a date alone and garbage", () => {
  for (const t of ["2026-11-23T10:00:00", "2026-11-23", "2026-11-23 10:00:00Z", "yesterday", "2026-13-45T10:00:00Z"]) {
    const { row, problems } = checkRow({ ...good, hoursAgo: undefined, effectiveStartTime: t }, { line: 1, now: NOW });
    assert.is(row, undefined, t);
    assert.equal(problems, [`effective-start-time ${JSON.stringify(t)} is not an ISO 8601 time with a zone, e.g. 2024-05-01T13:00:00Z`], t);
  }
});
check("keeps the API's window 0 <= now - t < 24 h exactly at its edges", () => {
  const at = (ms: number) => checkRow({ ...good, hoursAgo: undefined, effectiveStartTime: iso(ms) }, { line: 1, now: NOW });
  const outside = (ms: number) => [`effective-start-time ${iso(ms)} is outside the API's window (the last 24 hours, not in the future)`];
  assert.ok(at(NOW).row, "now itself is inside");
  assert.ok(at(NOW - USAGE_WINDOW_MS + 1).row, "24 h minus 1 ms ago is inside");
  assert.equal(at(NOW - USAGE_WINDOW_MS).problems, outside(NOW - USAGE_WINDOW_MS), "exactly 24 h ago is outside");
  assert.equal(at(NOW + 1).problems, outside(NOW + 1), "1 ms in the future is outside");
  assert.equal(at(NOW + 3_600_000).problems, outside(NOW + 3_600_000));
});
check.run();

const parseCsv = suite("parseUsageFile() csv");
parseCsv("reads rows under the documented header", () => {
  const { rows, problems } = csv(`${HEADER}\n${SUB},${MRG},cpu,5,0\n${SUB},${MRG},mem,1.5,2\n`);
  assert.equal(problems, []);
  assert.equal(rows, [
    { line: 2, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 5, effectiveStartTime: "2026-11-23T12:00:00Z", hoursAgo: 0 },
    { line: 3, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "mem", quantity: 1.5, effectiveStartTime: "2026-11-23T10:00:00Z", hoursAgo: 2 },
  ]);
});
parseCsv("matches header names without case, dashes, underscores or spaces, and the aliases", () => {
  for (const header of [
    "SubscriptionId,ManagedResourceGroup,Dimension,QUANTITY,HoursAgo",
    "subscription_id,managed_resource_group,dimension,quantity,hours_ago",
    "Subscription , Managed Resource Group,dimension,quantity,Hours Ago",
    "subscription,MRG,dimension,quantity,hours-ago",
    '"subscription","mrg","dimension","quantity","hours-ago"',
  ]) {
    const { rows, problems } = csv(`${header}\n${SUB},${MRG},cpu,5,1`);
    assert.equal(problems, [], header);
    assert.is(rows.length, 1, header);
    assert.is(rows[0].effectiveStartTime, "2026-11-23T11:00:00Z");
  }
});
parseCsv("takes columns in any order", () => {
  const { rows } = csv(`quantity,hours-ago,dimension,mrg,subscription\n7,3,cpu,${MRG},${SUB}`);
  assert.equal(rows.map((r) => [r.subscriptionId, r.managedResourceGroup, r.dimension, r.quantity, r.effectiveStartTime]), [[SUB, MRG, "cpu", 7, "2026-11-23T09:00:00Z"]]);
});
parseCsv("unquotes cells, including \"\" escapes and commas", () => {
  const { rows, problems } = csv(`${HEADER}\n"${SUB}","${MRG}","cpu ""fast"", big","5","0"`);
  assert.equal(problems, []);
  assert.is(rows[0].dimension, 'cpu "fast", big');
});
parseCsv("reports an unterminated quote and a wrong column count with the line, and keeps the good rows", () => {
  const { rows, problems } = csv(`${HEADER}\n${SUB},${MRG},"cpu,5,0\n${SUB},${MRG},cpu,5\n${SUB},${MRG},cpu,5,0,extra\n${SUB},${MRG},ok,5,0`);
  assert.equal(problems, [
    { line: 2, message: "unterminated quote" },
    { line: 3, message: "expected 5 columns, got 4" },
    { line: 4, message: "expected 5 columns, got 6" },
  ]);
  assert.equal(rows.map((r) => [r.line, r.dimension]), [[5, "ok"]]);
});
parseCsv("joins a row's problems with '; ' under its line number", () => {
  const { rows, problems } = csv(`${HEADER}\nnope,${MRG},cpu,0,1`);
  assert.equal(rows, []);
  assert.equal(problems, [{ line: 2, message: 'subscription "nope" is not a GUID; quantity "0": expected a decimal number greater than 0' }]);
});
parseCsv("refuses a header with an unknown column, naming it and the expected columns", () => {
  const { rows, problems } = csv(`${HEADER},colour\n${SUB},${MRG},cpu,5,0,red`);
  assert.equal(rows, []);
  assert.equal(problems, [{
    line: 1,
    message: 'bad header: unknown column "colour" (expected subscription, managed-resource-group, dimension, quantity, and hours-ago or effective-start-time)',
  }]);
});
parseCsv("refuses a header with missing or duplicated columns, listing every fault", () => {
  assert.match(csv("subscription,dimension,quantity,hours-ago\n").problems[0].message, /^bad header: missing column managedResourceGroup \(/);
  assert.match(csv(`${HEADER},Quantity\n`).problems[0].message, /^bad header: column quantity given twice \(/);
  assert.match(csv("subscription,mrg,dimension,quantity\n").problems[0].message, /^bad header: missing column hours-ago or effective-start-time \(/);
  assert.match(csv("subscription,subscription_id,x\n").problems[0].message,
    /^bad header: unknown column "x"; missing column managedResourceGroup, dimension, quantity; column subscriptionId given twice; missing column hours-ago or effective-start-time \(/);
});
parseCsv("does not read rows after a bad header", () => {
  const { rows, problems } = csv(`${HEADER},x\n${SUB},${MRG},cpu,5,0,1\n`);
  assert.equal(rows, []);
  assert.is(problems.length, 1);
});
parseCsv("an empty or blank file is one problem on line 1", () => {
  for (const text of ["", "\n\n", "  \r\n"]) {
    assert.equal(csv(text), { rows: [], problems: [{ line: 1, message: "the file is empty; expected a header row with subscription, managed-resource-group, dimension, quantity, and hours-ago or effective-start-time" }] });
  }
});
parseCsv("a header alone gives no rows and no problems", () => {
  assert.equal(csv(`${HEADER}\n`), { rows: [], problems: [] });
});
parseCsv("takes both time columns, one value per row", () => {
  const text = `subscription,mrg,dimension,quantity,hours-ago,effective-start-time\n${SUB},${MRG},a,1,2,\n${SUB},${MRG},b,1,,2026-11-23T08:30:00Z\n${SUB},${MRG},c,1,2,2026-11-23T08:30:00Z\n${SUB},${MRG},d,1,,`;
  const { rows, problems } = csv(text);
  assert.equal(rows.map((r) => [r.dimension, r.effectiveStartTime]), [["a", "2026-11-23T10:00:00Z"], ["b", "2026-11-23T08:30:00Z"]]);
  assert.equal(problems, [
    { line: 4, message: "give either hours-ago or effective-start-time, not both" },
    { line: 5, message: "hours-ago or effective-start-time is missing" },
  ]);
});
parseCsv("refuses an ISO time without a zone and times outside the window, with a frozen now", () => {
  const text = [
    "subscription,mrg,dimension,quantity,effective-start-time",
    `${SUB},${MRG},nozone,1,2026-11-23T10:00:00`,
    `${SUB},${MRG},edge-in,1,${iso(NOW - USAGE_WINDOW_MS + 1000)}`,
    `${SUB},${MRG},edge-out,1,${iso(NOW - USAGE_WINDOW_MS)}`,
    `${SUB},${MRG},future,1,2026-11-23T12:35:00Z`,
    `${SUB},${MRG},now,1,2026-11-23T12:34:56Z`,
  ].join("\n");
  const { rows, problems } = csv(text);
  assert.equal(rows.map((r) => [r.dimension, r.effectiveStartTime]), [["edge-in", "2026-11-22T12:34:57Z"], ["now", "2026-11-23T12:34:56Z"]]);
  assert.equal(problems.map((p) => p.line), [2, 4, 5]);
  assert.match(problems[0].message, /not an ISO 8601 time with a zone/);
  assert.match(problems[1].message, /outside the API's window/);
  assert.match(problems[2].message, /^effective-start-time 2026-11-23T12:35:00Z is outside the API's window/);
});
parseCsv("strips a BOM, reads CRLF and skips blank lines while keeping line numbers", () => {
  const text = `\uFEFF\r\n${HEADER}\r\n\r\n${SUB},${MRG},cpu,5,0\r\n   \r\n${SUB},${MRG},mem,6,1\r\n`;
  const { rows, problems } = csv(text);
  assert.equal(problems, []);
  assert.equal(rows.map((r) => [r.line, r.dimension, r.quantity]), [[4, "cpu", 5], [6, "mem", 6]]);
});
parseCsv("trims spaces around unquoted cells", () => {
  const { rows, problems } = csv(`${HEADER}\n ${SUB} , ${MRG} , cpu , 5 , 0 `);
  assert.equal(problems, []);
  assert.equal(rows.map((r) => [r.subscriptionId, r.managedResourceGroup, r.dimension, r.quantity]), [[SUB, MRG, "cpu", 5]]);
});
parseCsv("uses the real clock when no now is given", () => {
  const { rows } = parseUsageFile(`${HEADER}\n${SUB},${MRG},cpu,5,0`, { format: "csv" });
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  assert.ok([hour, hour - 3_600_000].includes(Date.parse(rows.at(0).effectiveStartTime)));
});
parseCsv("refuses the ceiling and decimal commas of quoted cells, with the line", () => {
  const { rows, problems } = csv(`${HEADER}\n${SUB},${MRG},cpu,"1,5",1\n${SUB},${MRG},mem,1e308,1\n${SUB},${MRG},disk,2,1`);
  assert.equal(rows.map((r) => r.dimension), ["disk"]);
  assert.equal(problems, [
    { line: 2, message: 'quantity "1,5": use a dot: 1.5' },
    { line: 3, message: 'quantity "1e308": above the ceiling of 1000000 per event (a unit mix-up?); pass --max-quantity to allow more' },
  ]);
  assert.equal(plain(parseUsageFile(`${HEADER}\n${SUB},${MRG},mem,1e308,1`, { format: "csv", now: NOW, maxQuantity: 1e309 })).problems, [],
    "a run may raise the ceiling");
});
parseCsv.run();

const parseJsonl = suite("parseUsageFile() jsonl");
parseJsonl("reads camelCase keys with numbers or strings", () => {
  const text = [
    JSON.stringify({ subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 5, hoursAgo: 0 }),
    JSON.stringify({ subscriptionId: SUB, managedResourceGroup: MRG, dimension: "mem", quantity: "2.5", effectiveStartTime: "2026-11-23T11:20:00Z" }),
  ].join("\n");
  const { rows, problems } = jsonl(text);
  assert.equal(problems, []);
  assert.equal(rows, [
    { line: 1, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 5, effectiveStartTime: "2026-11-23T12:00:00Z", hoursAgo: 0 },
    { line: 2, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "mem", quantity: 2.5, effectiveStartTime: "2026-11-23T11:20:00Z" },
  ]);
});
parseJsonl("refuses a line that names a field twice under two spellings", () => {
  const { rows, problems } = jsonl(JSON.stringify({ subscription: "nope", subscriptionId: SUB, mrg: MRG, dimension: "cpu", quantity: 1, hoursAgo: 1 }));
  assert.equal(rows, []);
  assert.equal(problems, [{ line: 1, message: 'key "subscriptionId" names a field given already' }]);
});
parseJsonl("reads kebab-case keys and the aliases", () => {
  const { rows, problems } = jsonl(JSON.stringify({ subscription: SUB, "managed-resource-group": MRG, dimension: "cpu", quantity: 1, "hours-ago": 3 })
    + "\n" + JSON.stringify({ subscription: SUB, mrg: MRG, dimension: "cpu", quantity: 1, "effective-start-time": "2026-11-23T01:00:00Z" }));
  assert.equal(problems, []);
  assert.equal(rows.map((r) => r.effectiveStartTime), ["2026-11-23T09:00:00Z", "2026-11-23T01:00:00Z"]);
});
parseJsonl("refuses a line with an unknown key, naming the key", () => {
  const { rows, problems } = jsonl(JSON.stringify({ subscriptionId: SUB, mrg: MRG, dimension: "cpu", quantity: 1, hoursAgo: 0, colour: "red", size: 1 }));
  assert.equal(rows, []);
  assert.equal(problems, [{ line: 1, message: 'unknown key "colour", "size" (expected subscription, managed-resource-group, dimension, quantity, and hours-ago or effective-start-time)' }]);
});
parseJsonl("refuses lines that are not JSON objects, and skips blank lines and a BOM", () => {
  const ok = JSON.stringify({ subscriptionId: SUB, mrg: MRG, dimension: "cpu", quantity: 1, hoursAgo: 0 });
  const { rows, problems } = jsonl(`\uFEFF${ok}\r\n[1]\n\n42\nnull\n"text"\n{"subscriptionId":\n${ok}`);
  assert.equal(rows.map((r) => r.line), [1, 8]);
  assert.equal(problems, [2, 4, 5, 6, 7].map((line) => ({ line, message: "not a JSON object" })));
});
parseJsonl("checks values as in CSV: quantity, hours, the window", () => {
  const base = { subscriptionId: SUB, mrg: MRG, dimension: "cpu" };
  const { rows, problems } = jsonl([
    { ...base, quantity: 0, hoursAgo: 1 },
    { ...base, quantity: 1, hoursAgo: 24 },
    { ...base, quantity: 1, hoursAgo: 1, effectiveStartTime: "2026-11-23T11:00:00Z" },
    { ...base, quantity: 1, effectiveStartTime: "2026-11-24T00:00:00Z" },
    { ...base, quantity: 1 },
  ].map((o) => JSON.stringify(o)).join("\n"));
  assert.equal(rows, []);
  assert.equal(problems, [
    { line: 1, message: 'quantity "0": expected a decimal number greater than 0' },
    { line: 2, message: 'hours-ago "24" is not an integer from 0 to 23' },
    { line: 3, message: "give either hours-ago or effective-start-time, not both" },
    { line: 4, message: "effective-start-time 2026-11-24T00:00:00Z is outside the API's window (the last 24 hours, not in the future)" },
    { line: 5, message: "hours-ago or effective-start-time is missing" },
  ]);
});
parseJsonl("an empty file has neither rows nor problems", () => {
  assert.equal(jsonl(""), { rows: [], problems: [] });
});
parseJsonl.run();

const format = suite("formatOfPath()");
format("knows .csv, .jsonl and .ndjson in any case, and nothing else", () => {
  assert.is(formatOfPath("/data/usage.csv"), "csv");
  assert.is(formatOfPath("USAGE.CSV"), "csv");
  assert.is(formatOfPath("u.jsonl"), "jsonl");
  assert.is(formatOfPath("u.NDJSON"), "jsonl");
  assert.is(formatOfPath("u.json"), undefined);
  assert.is(formatOfPath("u.txt"), undefined);
  assert.is(formatOfPath("csv"), undefined);
  assert.is(formatOfPath("u.csv.gz"), undefined);
});
format.run();

const sniff = suite("sniffFormat()");
sniff("is jsonl when the text starts with {, after whitespace or a BOM; csv otherwise", () => {
  assert.is(sniffFormat('{"a":1}'), "jsonl");
  assert.is(sniffFormat('\n  \t{"a":1}'), "jsonl");
  assert.is(sniffFormat('\uFEFF{"a":1}'), "jsonl");
  assert.is(sniffFormat(HEADER), "csv");
  assert.is(sniffFormat("[1]"), "csv");
  assert.is(sniffFormat(""), "csv");
});
sniff.run();

const enc = (text: string) => new TextEncoder().encode(text);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
/** The bytes cut into pieces of `size` (the last may be shorter), as a stream delivers them. */
function* pieces(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
const GOOD_CSV = `${HEADER}\n${SUB},${MRG},cpu,5,0\n${SUB},${MRG},größe-µ,1.5,2\r\n\n${SUB},${MRG},mem,7,3`;

const stream = suite("readUsageFile()");
stream("reads the same rows and problems whatever the chunks, even cut inside a UTF-8 character or a CRLF", async () => {
  const bytes = enc(`\uFEFF${GOOD_CSV}\n${SUB},${MRG},bad,0,1\n`);
  const whole = plain(parseUsageFile(bytes, { format: "csv", now: NOW }));
  assert.equal(whole.rows.map((r) => [r.line, r.dimension]), [[2, "cpu"], [3, "größe-µ"], [5, "mem"]]);
  assert.equal(whole.problems, [{ line: 6, message: 'quantity "0": expected a decimal number greater than 0' }]);
  for (const size of [1, 2, 3, 7, 64, bytes.length]) {
    assert.equal(plain(await readUsageFile(pieces(bytes, size), { format: "csv", now: NOW })), whole, `chunks of ${size}`);
  }
});
stream("returns the SHA-256 of the bytes exactly as read, BOM and line ends included", async () => {
  const bytes = enc(`\uFEFF${GOOD_CSV}\r\n`);
  assert.is((await readUsageFile(pieces(bytes, 5), { format: "csv", now: NOW })).digest, sha256(bytes));
  assert.is(parseUsageFile(bytes, { format: "csv", now: NOW }).digest, sha256(bytes));
  assert.is.not(parseUsageFile(enc(GOOD_CSV), { format: "csv", now: NOW }).digest, sha256(bytes), "another byte, another digest");
  assert.is(parseUsageFile("", { format: "jsonl" }).digest, sha256(new Uint8Array()));
});
stream("takes its format from the first line that is not blank when none is given, and says which", async () => {
  const lines = `\n  \n${JSON.stringify({ subscriptionId: SUB, mrg: MRG, dimension: "cpu", quantity: 1, hoursAgo: 1 })}\n`;
  const fromJson = await readUsageFile([enc(lines)], { now: NOW });
  assert.equal([fromJson.format, fromJson.rows.length, fromJson.problems], ["jsonl", 1, []]);
  const fromCsv = await readUsageFile([enc(GOOD_CSV)], { now: NOW });
  assert.equal([fromCsv.format, fromCsv.rows.length], ["csv", 3]);
  assert.is((await readUsageFile([], { now: NOW })).format, "csv", "nothing at all reads as an empty CSV");
});
stream("names every line that is not UTF-8 and still reads the others", async () => {
  const bad = new Uint8Array([...enc(`${SUB},${MRG},cpu`), 0xe9, ...enc(",1,1")]); // Latin-1 "é"
  const truncated = new Uint8Array([...enc(`${SUB},${MRG},m`), 0xc3]); // the first byte of a two-byte character, then the line ends
  const bytes = new Uint8Array([...enc(`${HEADER}\n`), ...bad, ...enc(`\n${SUB},${MRG},ok,1,1\n`), ...truncated, ...enc("\n")]);
  for (const size of [1, 4, bytes.length]) {
    const { rows, problems } = plain(await readUsageFile(pieces(bytes, size), { format: "csv", now: NOW }));
    assert.equal(rows.map((r) => [r.line, r.dimension]), [[3, "ok"]], `chunks of ${size}`);
    assert.equal(problems, [2, 4].map((line) => ({ line, message: "not valid UTF-8 text (save the file as UTF-8; in Excel: CSV UTF-8)" })), `chunks of ${size}`);
  }
  const jsonBad = new Uint8Array([0x7b, 0xff, 0x7d, 0x0a]);
  assert.equal(parseUsageFile(jsonBad, { format: "jsonl", now: NOW }).problems, [{ line: 1, message: "not valid UTF-8 text (save the file as UTF-8; in Excel: CSV UTF-8)" }]);
});
stream("a header that is not UTF-8 is a bad header, and no row is read after it", () => {
  const bytes = new Uint8Array([...enc("subscr"), 0xff, ...enc(`iption,mrg,dimension,quantity,hours-ago\n${SUB},${MRG},cpu,1,1\n`)]);
  const { rows, problems } = plain(parseUsageFile(bytes, { format: "csv", now: NOW }));
  assert.equal(rows, []);
  assert.equal(problems, [{ line: 1, message: "bad header: not valid UTF-8 text (save the file as UTF-8; in Excel: CSV UTF-8)" }]);
});
stream("a UTF-16 file is one problem on line 1 that says so", () => {
  const utf16 = new Uint8Array([0xff, 0xfe, ...[...HEADER].flatMap((ch) => [ch.charCodeAt(0), 0])]);
  for (const bytes of [utf16, new Uint8Array([0xfe, 0xff, 0, 0x73])]) {
    const parsed = parseUsageFile(bytes, { format: "csv", now: NOW });
    assert.equal(plain(parsed), { rows: [], problems: [{ line: 1, message: "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8" }] });
    assert.is(parsed.digest, sha256(bytes));
  }
});
stream("keeps hours-ago on relative rows and none on absolute ones", async () => {
  const text = `subscription,mrg,dimension,quantity,hours-ago,effective-start-time\n${SUB},${MRG},a,1,4,\n${SUB},${MRG},b,1,,2026-11-23T08:30:00Z\n`;
  const [relative, absolute] = (await readUsageFile([enc(text)], { format: "csv", now: NOW })).rows.toArray();
  assert.equal([relative.hoursAgo, relative.effectiveStartTime], [4, "2026-11-23T08:00:00Z"]);
  assert.not.ok("hoursAgo" in absolute);
});
stream("rejects a read error of the stream as it is (the caller says what could not be read)", async () => {
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield enc(`${HEADER}\n`);
    throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
  }
  try {
    await readUsageFile(failing(), { format: "csv", now: NOW });
    assert.unreachable();
  } catch (error) {
    assert.is((error as { code?: string }).code, "EIO");
  }
});
stream.run();

const rowsSuite = suite("UsageRows");
const relativeRow: UsageRow = { line: 2, subscriptionId: SUB, managedResourceGroup: MRG, dimension: "cpu", quantity: 2.5, effectiveStartTime: "2026-11-23T11:00:00Z", hoursAgo: 1 };
const absoluteRow: UsageRow = { line: 3, subscriptionId: SUB.toUpperCase(), managedResourceGroup: MRG, dimension: "mem", quantity: 1e-9, effectiveStartTime: "2026-11-23T10:15:00Z" };
rowsSuite("gives back the rows it was given, field for field, hoursAgo only where there was one", () => {
  const rows = UsageRows.from([relativeRow, absoluteRow]);
  assert.is(rows.length, 2);
  assert.equal(rows.toArray(), [relativeRow, absoluteRow]);
  assert.equal([...rows], [relativeRow, absoluteRow]);
  assert.equal(rows.at(1), absoluteRow);
  assert.not.ok("hoursAgo" in rows.at(1));
  assert.equal(JSON.parse(JSON.stringify({ rows })), { rows: [relativeRow, absoluteRow] });
});
rowsSuite("reads one field without the row", () => {
  const rows = UsageRows.from([relativeRow, absoluteRow]);
  for (const field of ["line", "subscriptionId", "managedResourceGroup", "dimension", "quantity", "effectiveStartTime", "hoursAgo"] as const) {
    assert.is(rows.fieldAt(0, field), relativeRow[field], field);
    assert.is(rows.fieldAt(1, field), absoluteRow[field], field);
  }
});
rowsSuite("holds any number of rows, and a copy of each value", () => {
  const rows = new UsageRows();
  const row = { ...relativeRow };
  for (let i = 0; i < 1000; i++) rows.push({ ...row, line: i + 2, quantity: i + 0.5, hoursAgo: i % 24 });
  row.dimension = "changed afterwards";
  assert.is(rows.length, 1000);
  assert.equal(rows.at(999), { ...relativeRow, line: 1001, quantity: 999.5, hoursAgo: 999 % 24 });
});
rowsSuite("refuses a row index out of range and rows it cannot hold", () => {
  const rows = UsageRows.from([relativeRow]);
  for (const i of [-1, 1, 0.5]) assert.throws(() => rows.at(i), (e: Error) => e instanceof RangeError && /^Cannot read row/.test(e.message));
  assert.throws(() => rows.push({ ...relativeRow, line: -1 }), (e: Error) => e instanceof RangeError && /line -1/.test(e.message));
  assert.throws(() => rows.push({ ...relativeRow, hoursAgo: 200 }), (e: Error) => e instanceof RangeError && /hoursAgo 200/.test(e.message));
  assert.is(rows.length, 1, "nothing was added");
});
rowsSuite("filter keeps the rows it is told to, in order", () => {
  const rows = UsageRows.from([relativeRow, absoluteRow, { ...relativeRow, line: 4 }]);
  assert.equal(rows.filter((r, i) => r.dimension === "cpu" && i > 0).toArray(), [{ ...relativeRow, line: 4 }]);
});
rowsSuite("resolvedAgainst moves relative rows to another instant and leaves absolute ones", () => {
  const earlier = NOW - 5 * 3_600_000;
  const moved = UsageRows.from([relativeRow, absoluteRow]).resolvedAgainst(earlier);
  assert.equal(moved.toArray(), [{ ...relativeRow, effectiveStartTime: "2026-11-23T06:00:00Z" }, absoluteRow]);
});
rowsSuite.run();

const against = suite("checkRows()");
const [A, B] = CUSTOMERS;
const rowOf = (c: { subscriptionId: string; managedResourceGroup: string }, dimension: string, line: number, effectiveStartTime = "2026-11-23T11:00:00Z"): UsageRow =>
  ({ line, subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup, dimension, quantity: 1, effectiveStartTime });
against("passes rows of connected customers, one per customer, dimension and hour, as the same UsageRows", () => {
  const rows = UsageRows.from([rowOf(A, "cpu", 2), rowOf(A, "mem", 3), rowOf(B, "cpu", 4), rowOf(A, "cpu", 5, "2026-11-23T10:00:00Z")]);
  const checked = checkRows(rows, configWith());
  assert.equal(checked.problems, []);
  assert.is(checked.rows, rows);
});
against("a row of a customer that is not connected is a problem with its line, saying how to connect it", () => {
  const stranger = { subscriptionId: "99999999-9999-4999-8999-999999999999", managedResourceGroup: "mrg-x" };
  const { rows, problems } = checkRows([rowOf(stranger, "cpu", 5), rowOf(B, "cpu", 6), rowOf(A, "cpu", 7)], configWith([A]));
  assert.equal(rows.toArray().map((r) => r.line), [7]);
  assert.equal(problems, [
    { line: 5, message: `customer ${stranger.subscriptionId}/mrg-x is not connected (run 1-connect-customer ${stranger.subscriptionId} mrg-x first)` },
    { line: 6, message: `customer ${B.subscriptionId}/${B.managedResourceGroup} is not connected (run 1-connect-customer ${B.subscriptionId} ${B.managedResourceGroup} first)` },
  ]);
});
against("a customer without billing ids is a problem that says to connect it again", () => {
  const config = configWith([A]);
  delete (config.customers[A.subscriptionId][A.managedResourceGroup] as { billing?: unknown }).billing;
  assert.equal(checkRows([rowOf(A, "cpu", 2)], config).problems, [
    { line: 2, message: `customer ${A.subscriptionId}/${A.managedResourceGroup} has no billing ids in config.json (run 1-connect-customer ${A.subscriptionId} ${A.managedResourceGroup} --force)` },
  ]);
});
against("finds customers in any case: one customer, whatever the spelling", () => {
  const upper = { subscriptionId: A.subscriptionId.toUpperCase(), managedResourceGroup: A.managedResourceGroup.toUpperCase() };
  const { rows, problems } = checkRows([rowOf(upper, "cpu", 2), rowOf(A, "cpu", 3, "2026-11-23T11:59:59Z")], configWith([A]));
  assert.equal(rows.toArray().map((r) => r.line), [2]);
  assert.equal(problems, [{ line: 3, message: "same customer, dimension and hour as line 2: the API keeps one event per hour, so add the quantities into one row" }]);
});
against("names the first line of each repeated customer, dimension and hour, and keeps other hours and dimensions", () => {
  const rows = [
    rowOf(A, "cpu", 2), rowOf(A, "cpu", 3, "2026-11-23T11:30:00Z"), rowOf(A, "cpu", 4, "2026-11-23T10:00:00Z"),
    rowOf(A, "CPU", 5), rowOf(B, "cpu", 6), rowOf(A, "cpu", 7, "2026-11-23T11:45:00Z"),
  ];
  const { rows: passed, problems } = checkRows(rows, configWith());
  assert.equal(passed.toArray().map((r) => r.line), [2, 4, 5, 6], "dimension ids are case-sensitive");
  assert.equal(problems.map((p) => p.line), [3, 7]);
  assert.ok(problems.every((p) => p.message.startsWith("same customer, dimension and hour as line 2:")));
});
against("tells a hundred thousand distinct rows apart, and finds the one repeat among them", () => {
  const rows = new UsageRows();
  let line = 2;
  for (const c of CUSTOMERS) for (let d = 0; d < 833; d++) for (let h = 0; h < 24; h++) {
    rows.push(rowOf(c, `dim-${d}`, line++, new Date(Date.parse("2026-11-23T12:00:00Z") - h * 3_600_000).toISOString().replace(".000Z", "Z")));
  }
  rows.push(rowOf(CUSTOMERS[4], "dim-832", line, "2026-11-22T13:10:00Z"));
  const { rows: passed, problems } = checkRows(rows, configWith());
  assert.is(passed.length, rows.length - 1);
  assert.equal(problems, [{ line, message: `same customer, dimension and hour as line ${line - 1}: the API keeps one event per hour, so add the quantities into one row` }]);
});
against.run();
