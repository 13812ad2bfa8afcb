import { suite } from "uvu";
import * as assert from "uvu/assert";
import { UsageError } from "../../lib/core/errors.mts";
import {
  checkQuantity, DEFAULT_MAX_QUANTITY, dimensionProblem, MAX_DIMENSION_ID_LENGTH, parseDimension, parseHoursAgo, parseMaxQuantity, parseQuantity,
  parseResourceGroupName, parseSubscriptionId,
} from "../../lib/core/validate.mts";

function rejects(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
    assert.unreachable("should have thrown");
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as UsageError).code, "ERR_USAGE");
    assert.match((error as Error).message, pattern);
  }
}

const sub = suite("parseSubscriptionId()");
sub("accepts a GUID in any case", () => {
  assert.is(parseSubscriptionId("0B1F6471-1bf0-4dda-aec3-cb9272f09590"), "0B1F6471-1bf0-4dda-aec3-cb9272f09590");
});
sub("rejects non-GUIDs, naming the value", () => {
  for (const v of ["", "1", "0b1f6471-1bf0-4dda-aec3-cb9272f0959", "{0b1f6471-1bf0-4dda-aec3-cb9272f09590}", "0b1f6471-1bf0-4dda-aec3-cb9272f0959g"]) {
    rejects(() => parseSubscriptionId(v), /^Cannot use subscription ".*": expected a subscription id/);
  }
  rejects(() => parseSubscriptionId(undefined), /^Cannot use subscription "":/);
});
sub.run();

const rg = suite("parseResourceGroupName()");
rg("accepts letters, digits, _ ( ) - . and Unicode letters, up to 90 chars", () => {
  for (const v of ["a", "mrg-app1_(x).y", "x".repeat(90), "grüße", "1"]) assert.is(parseResourceGroupName(v), v);
});
rg("rejects empty, too long, a final period and other characters", () => {
  for (const v of ["", "x".repeat(91), "rg.", "a b", "a/b", "a*b", "a#b"]) {
    rejects(() => parseResourceGroupName(v, "managed resource group"), /^Cannot use managed resource group .*: expected 1-90/);
  }
});
rg.run();

const hours = suite("parseHoursAgo()");
hours("accepts integers 0..23", () => {
  assert.is(parseHoursAgo("0"), 0);
  assert.is(parseHoursAgo("23"), 23);
  assert.is(parseHoursAgo("07"), 7);
});
hours("rejects negatives, 24+, fractions, words and empty", () => {
  for (const v of ["-1", "24", "1.5", "one", "", "1e1", " ", "0x1"]) rejects(() => parseHoursAgo(v), /^Cannot use hours-ago .*: expected an integer from 0/);
});
hours.run();

const qty = suite("parseQuantity()");
qty("accepts finite decimals > 0", () => {
  assert.is(parseQuantity("5"), 5);
  assert.is(parseQuantity("0.02"), 0.02);
  assert.is(parseQuantity("20.5"), 20.5);
  assert.is(parseQuantity("1e3"), 1000);
  assert.is(parseQuantity(".5"), 0.5);
});
qty("rejects 0, negatives, NaN, Infinity, hex and empty", () => {
  for (const v of ["0", "-1", "-0.5", "NaN", "Infinity", "0x10", "", "abc", "0.0", "1,5,0"]) {
    rejects(() => parseQuantity(v), /^Cannot use quantity .*: expected a decimal number greater than 0$/);
  }
});
qty("says to use a dot for a decimal comma", () => {
  rejects(() => parseQuantity("1,5"), /^Cannot use quantity "1,5": use a dot: 1\.5$/);
});
qty("refuses more than the ceiling, 1,000,000 by default, so that a unit mix-up is not billed", () => {
  assert.is(parseQuantity("1000000"), 1_000_000);
  for (const v of ["1e308", "1e400", "1000001"]) {
    rejects(() => parseQuantity(v), /^Cannot use quantity ".*": above the ceiling of 1000000 per event \(a unit mix-up\?\); pass --max-quantity to allow more$/);
  }
  assert.is(parseQuantity("5e7", { maxQuantity: 1e8 }), 5e7);
  rejects(() => parseQuantity("3", { maxQuantity: 2.5 }), /above the ceiling of 2\.5 per event/);
});
qty.run();

const dim = suite("parseDimension()");
dim("accepts a dimension id and trims it", () => {
  assert.is(parseDimension("dim1"), "dim1");
  assert.is(parseDimension(" dim1 "), "dim1");
});
dim("rejects empty and blank", () => {
  for (const v of ["", "   ", undefined]) rejects(() => parseDimension(v), /^Cannot use dimension .*: expected the dimension id from Partner Center \(non-empty\)$/);
});
dim("rejects control characters and an id longer than the bound", () => {
  rejects(() => parseDimension("a\nb"), /^Cannot use dimension "a\\nb": it holds control characters; expected the dimension id/);
  rejects(() => parseDimension("x".repeat(MAX_DIMENSION_ID_LENGTH + 1)), new RegExp(`: it is ${MAX_DIMENSION_ID_LENGTH + 1} characters long, more than ${MAX_DIMENSION_ID_LENGTH};`));
  assert.is(parseDimension("x".repeat(MAX_DIMENSION_ID_LENGTH)).length, MAX_DIMENSION_ID_LENGTH);
});
dim.run();

const quantity = suite("checkQuantity()");
quantity("returns the number of a decimal text or a JSON number", () => {
  assert.equal(checkQuantity("20.5"), { quantity: 20.5 });
  assert.equal(checkQuantity(" +3 "), { quantity: 3 });
  assert.equal(checkQuantity(0.02), { quantity: 0.02 });
});
quantity("says what is wrong as a phrase that follows the value", () => {
  assert.equal(checkQuantity("1,25"), { problem: "use a dot: 1.25" });
  assert.equal(checkQuantity("-1"), { problem: "expected a decimal number greater than 0" });
  assert.equal(checkQuantity(Number.NaN), { problem: "expected a decimal number greater than 0" });
  assert.equal(checkQuantity(Number.POSITIVE_INFINITY), { problem: "above the ceiling of 1000000 per event (a unit mix-up?); pass --max-quantity to allow more" });
});
quantity("takes the ceiling from maxQuantity, DEFAULT_MAX_QUANTITY when left out", () => {
  assert.is(DEFAULT_MAX_QUANTITY, 1_000_000);
  assert.equal(checkQuantity(1_000_001), { problem: "above the ceiling of 1000000 per event (a unit mix-up?); pass --max-quantity to allow more" });
  assert.equal(checkQuantity(1_000_001, { maxQuantity: 2e6 }), { quantity: 1_000_001 });
});
quantity.run();

const dimension = suite("dimensionProblem()");
dimension("is undefined for what can be a dimension id, unicode and spaces included", () => {
  for (const v of ["cpu", "cpu-hours_v2", "größe", "Storage GB", "x".repeat(MAX_DIMENSION_ID_LENGTH)]) assert.is(dimensionProblem(v), undefined, v);
});
dimension("names empty, control characters (C0, DEL, C1) and too long", () => {
  assert.is(dimensionProblem(""), "expected the dimension id from Partner Center (non-empty)");
  for (const v of ["a\u0000", "tab\there", "del\u007f", "c1\u0085"]) assert.match(dimensionProblem(v)!, /^it holds control characters;/, JSON.stringify(v));
  assert.match(dimensionProblem("x".repeat(MAX_DIMENSION_ID_LENGTH + 1))!, /^it is \d+ characters long, more than \d+;/);
});
dimension.run();

const maxQty = suite("parseMaxQuantity()");
maxQty("accepts a decimal number greater than 0", () => {
  assert.is(parseMaxQuantity("5000000"), 5_000_000);
  assert.is(parseMaxQuantity("1e9"), 1e9);
  assert.is(parseMaxQuantity("0.5"), 0.5);
});
maxQty("rejects zero, negatives, words and numbers too large to hold", () => {
  for (const v of ["0", "-1", "lots", "", "1e400", undefined]) rejects(() => parseMaxQuantity(v), /^Cannot use --max-quantity .*: expected a decimal number greater than 0$/);
});
maxQty.run();
