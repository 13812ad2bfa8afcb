import { suite } from "uvu";
import * as assert from "uvu/assert";
import { retry } from "../../lib/core/retry.mts";

const test = suite("retry()");
const noSleep = (waits: number[]) => (ms: number) => {
  waits.push(ms);
  return Promise.resolve();
};

test("returns the first success", async () => {
  assert.is(await retry(async () => 7), 7);
});
test("retries retryable errors with doubling delays, capped", async () => {
  const waits: number[] = [];
  let calls = 0;
  const result = await retry(async () => {
    if (++calls < 4) throw new Error("transient");
    return calls;
  }, { attempts: 5, delayMs: 100, maxDelayMs: 300, isRetryable: () => true, sleep: noSleep(waits) });
  assert.is(result, 4);
  assert.equal(waits, [100, 200, 300]);
});
test("does not retry by default", async () => {
  let calls = 0;
  try {
    await retry(async () => {
      calls++;
      throw new Error("no");
    }, { sleep: noSleep([]) });
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, "no");
    assert.is(calls, 1);
  }
});
test("gives up after the last attempt with the last error", async () => {
  let calls = 0;
  const seen: number[] = [];
  try {
    await retry(async () => {
      throw new Error(`fail ${++calls}`);
    }, { attempts: 3, isRetryable: () => true, sleep: noSleep([]), onRetry: ({ attempt }) => seen.push(attempt) });
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, "fail 3");
    assert.equal(seen, [1, 2]);
  }
});
test.run();
