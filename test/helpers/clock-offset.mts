// Test-only preload: moves this process's clock by METERING_TEST_CLOCK_OFFSET_MS milliseconds,
// as if the machine's clock were set forward (or back), so an end-to-end test can cross a UTC
// hour or the API's 24-hour window without waiting. Loaded only by the tests' runScript
// (`preload: [CLOCK_PRELOAD]`, with `--import` on Node and `--preload` on Deno); the product
// has no switch for it. Timers and performance.now() are left alone: only the wall clock moves.
const offsetMs = Number(process.env.METERING_TEST_CLOCK_OFFSET_MS ?? "0");

if (Number.isFinite(offsetMs) && offsetMs !== 0) {
  const RealDate = Date;
  const now = () => RealDate.now() + offsetMs;
  // A subclass keeps `instanceof Date`, Date.parse, Date.UTC and every method as they are.
  class ShiftedDate extends RealDate {
    constructor(...args: unknown[]) {
      super(...((args.length === 0 ? [now()] : args) as [number]));
    }
    static override now(): number {
      return now();
    }
  }
  globalThis.Date = ShiftedDate as DateConstructor;
}

export {};
