import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  effectiveStartTime, hourOf, hourStartMs, isInUsageWindow, isoSeconds, keyResource, resourceOfKey, USAGE_WINDOW_MS, usageKey, usageKeyPrefix,
} from "../../lib/metering/time.mts";

const NOW = Date.parse("2024-05-01T13:45:10.123Z");

const iso = suite("isoSeconds() / hourStartMs()");
iso("writes ISO 8601 UTC without milliseconds", () => {
  assert.is(isoSeconds(NOW), "2024-05-01T13:45:10Z");
  assert.is(isoSeconds(new Date(NOW)), "2024-05-01T13:45:10Z");
  assert.is(isoSeconds(Date.parse("2024-05-01T13:00:00Z")), "2024-05-01T13:00:00Z");
});
iso("hourStartMs is the start of the UTC hour", () => {
  assert.is(hourStartMs(NOW), Date.parse("2024-05-01T13:00:00Z"));
  assert.is(hourStartMs(Date.parse("2024-05-01T13:00:00Z")), Date.parse("2024-05-01T13:00:00Z"));
});
iso.run();

const start = suite("effectiveStartTime()");
start("is the start of the UTC hour hoursAgo back, without milliseconds", () => {
  assert.is(effectiveStartTime({ hoursAgo: 0, now: NOW }), "2024-05-01T13:00:00Z");
  assert.is(effectiveStartTime({ hoursAgo: 1, now: NOW }), "2024-05-01T12:00:00Z");
  assert.is(effectiveStartTime({ hoursAgo: 14, now: NOW }), "2024-04-30T23:00:00Z");
  assert.is(effectiveStartTime({ hoursAgo: 0, now: Date.parse("2024-05-01T13:00:00.000Z") }), "2024-05-01T13:00:00Z");
});
start("rejects negative or fractional hours", () => {
  for (const hoursAgo of [-1, 0.5]) {
    try {
      effectiveStartTime({ hoursAgo, now: NOW });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RangeError);
    }
  }
});
start.run();

const hour = suite("hourOf()");
hour("is the start of the UTC hour holding the time", () => {
  assert.is(hourOf("2024-05-01T13:25:59Z"), "2024-05-01T13:00:00Z");
  assert.is(hourOf("2024-05-01T13:00:00Z"), "2024-05-01T13:00:00Z");
  assert.is(hourOf("2024-05-01T13:59:59.999Z"), "2024-05-01T13:00:00Z");
  assert.is(hourOf("2024-05-01T00:30:00+02:00"), "2024-04-30T22:00:00Z");
});
hour.run();

const window = suite("isInUsageWindow()");
window("is 0 <= now - t < 24 h", () => {
  assert.ok(isInUsageWindow(NOW, NOW), "now");
  assert.ok(isInUsageWindow(NOW - USAGE_WINDOW_MS + 1, NOW), "24 h minus 1 ms ago");
  assert.not.ok(isInUsageWindow(NOW - USAGE_WINDOW_MS, NOW), "exactly 24 h ago");
  assert.not.ok(isInUsageWindow(NOW + 1, NOW), "in the future");
  assert.is(USAGE_WINDOW_MS, 24 * 3_600_000);
});
window.run();

const key = suite("usageKey()");
key("is resource id in lower case, dimension as given, and the UTC hour", () => {
  const e = { resourceId: "ABCDEF01-2345-4678-9ABC-DEF012345678", dimension: "CPU", effectiveStartTime: "2024-05-01T13:25:00Z" };
  assert.is(usageKey(e), "abcdef01-2345-4678-9abc-def012345678|CPU|2024-05-01T13:00:00Z");
});
key("is the same for any case of the resource id and any time within the hour", () => {
  const base = { resourceId: "abc", dimension: "cpu", effectiveStartTime: "2024-05-01T13:00:00Z" };
  assert.is(usageKey({ ...base, resourceId: "ABC", effectiveStartTime: "2024-05-01T13:59:59Z" }), usageKey(base));
  assert.is(usageKey({ ...base, effectiveStartTime: "2024-05-01T15:30:00+02:00" }), usageKey(base));
});
key("differs for another hour or another dimension case", () => {
  const base = { resourceId: "abc", dimension: "cpu", effectiveStartTime: "2024-05-01T13:00:00Z" };
  assert.is.not(usageKey({ ...base, effectiveStartTime: "2024-05-01T14:00:00Z" }), usageKey(base));
  assert.is.not(usageKey({ ...base, dimension: "CPU" }), usageKey(base));
});
key.run();


const prefix = suite("usageKeyPrefix()");
prefix("is usageKey up to the hour: resource id in lower case, dimension as given", () => {
  const e = { resourceId: "ABCDEF01-5555-4555-8555-5555555555AB", dimension: "CPU-hours", effectiveStartTime: "2026-11-23T10:45:00Z" };
  assert.is(usageKeyPrefix(e), "abcdef01-5555-4555-8555-5555555555ab|CPU-hours|");
  assert.is(usageKey(e), `${usageKeyPrefix(e)}2026-11-23T10:00:00Z`);
});
prefix.run();

const resource = suite("keyResource() / resourceOfKey()");
resource("name the resource part of a usage key", () => {
  const e = { resourceId: "ABCDEF01-5555-4555-8555-5555555555AB", dimension: "cpu", effectiveStartTime: "2026-11-23T10:45:00Z" };
  assert.is(resourceOfKey(usageKey(e)), keyResource(e.resourceId));
  assert.is(keyResource(e.resourceId), "abcdef01-5555-4555-8555-5555555555ab");
  assert.is(resourceOfKey("no-bar"), "no-bar");
});
resource.run();
