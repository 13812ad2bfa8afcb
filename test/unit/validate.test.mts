import { suite } from "uvu";
import * as assert from "uvu/assert";
import { UsageError } from "../../lib/errors.mts";
import { parseDimension, parseHoursAgo, parseQuantity, parseResourceGroupName, parseSubscriptionId } from "../../lib/validate.mts";

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
  for (const v of ["0", "-1", "NaN", "Infinity", "1e400", "0x10", "", "abc", "1,5", "0.0"]) {
    rejects(() => parseQuantity(v), /^Cannot use quantity .*: expected a decimal number greater than 0$/);
  }
});
qty.run();

const dim = suite("parseDimension()");
dim("accepts a dimension id and trims it", () => {
  assert.is(parseDimension("dim1"), "dim1");
  assert.is(parseDimension(" dim1 "), "dim1");
});
dim("rejects empty, blank and control characters", () => {
  for (const v of ["", "   ", "a\nb", undefined]) rejects(() => parseDimension(v), /^Cannot use dimension .*: expected the dimension id/);
});
dim.run();
