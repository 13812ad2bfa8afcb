import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createProgress, renderBar, type ProgressStream } from "../../lib/cli/progress.mts";

/** A stream that records writes; a clock the test moves by hand. */
function fakeStream(options: { isTTY?: boolean; columns?: number } = {}): ProgressStream & { writes: string[] } {
  const writes: string[] = [];
  return { ...options, writes, write: (text: string) => void writes.push(text) };
}
function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const bar = suite("renderBar()");
bar("draws filled and empty cells, the percentage padded to 3 and done/total", () => {
  assert.is(renderBar(5, 10, { width: 10 }), "[#####-----]  50% 5/10");
  assert.is(renderBar(0, 10, { width: 4 }), "[----]   0% 0/10");
  assert.is(renderBar(10, 10, { width: 4 }), "[####] 100% 10/10");
});
bar("is 24 cells wide by default and appends the detail", () => {
  assert.is(renderBar(1, 4, { detail: "customer 2 of 3" }), `[${"#".repeat(6)}${"-".repeat(18)}]  25% 1/4 customer 2 of 3`);
});
bar("rounds the cells but floors the percentage", () => {
  assert.is(renderBar(999, 1000, { width: 10 }), "[##########]  99% 999/1000");
  assert.is(renderBar(1, 3, { width: 3 }), "[#--]  33% 1/3");
});
bar("caps at 100% when done exceeds total, and shows a zero total as complete", () => {
  assert.is(renderBar(12, 10, { width: 5 }), "[#####] 100% 12/10");
  assert.is(renderBar(0, 0, { width: 5 }), "[#####] 100% 0/0");
});
bar.run();

const tty = suite("createProgress() on a terminal");
tty("redraws the line in place with \\r and clears the rest of it", () => {
  const stream = fakeStream({ isTTY: true, columns: 80 });
  const clock = fakeClock();
  const p = createProgress({ stream, total: 10, label: "events", now: clock.now });
  p.update(3, "A");
  assert.equal(stream.writes, [`\revents ${renderBar(3, 10, { detail: "A" })}\u001b[K`]);
});
tty("draws at most every 100 ms, but always the final count", () => {
  const stream = fakeStream({ isTTY: true, columns: 80 });
  const clock = fakeClock();
  const p = createProgress({ stream, total: 10, label: "events", now: clock.now });
  p.update(1);
  clock.advance(50);
  p.update(2);
  clock.advance(49);
  p.update(3);
  assert.is(stream.writes.length, 1, "throttled within 100 ms");
  clock.advance(1);
  p.update(4);
  assert.is(stream.writes.length, 2);
  // deno-lint-ignore no-control-regex -- the progress bar erases the line with ESC [K
  assert.match(stream.writes[1], / 4\/10\u001b\[K$/);
  clock.advance(1);
  p.update(10);
  assert.is(stream.writes.length, 3, "the last unit is drawn at once");
  assert.match(stream.writes[2], /100% 10\/10/);
});
tty("cuts the line to the terminal width", () => {
  const stream = fakeStream({ isTTY: true, columns: 30 });
  const p = createProgress({ stream, total: 10, label: "events", now: fakeClock().now });
  p.update(5, "a long detail that would wrap");
  assert.is(stream.writes[0], `\r${`events ${renderBar(5, 10, { detail: "a long detail that would wrap" })}`.slice(0, 29)}\u001b[K`);
  const narrow = fakeStream({ isTTY: true, columns: 5 });
  createProgress({ stream: narrow, total: 10, label: "events", now: fakeClock().now }).update(5);
  assert.is(narrow.writes[0].length, 1 + 20 + 3, "never narrower than 20 characters");
});
tty("done clears the line", () => {
  const stream = fakeStream({ isTTY: true });
  const p = createProgress({ stream, total: 2, label: "x", now: fakeClock().now });
  p.update(1);
  p.done();
  assert.is(stream.writes.at(-1), "\r\u001b[K");
  assert.is(stream.writes.length, 2);
});
tty.run();

const log = suite("createProgress() in a log");
log("prints a whole line at most every logEveryMs", () => {
  const stream = fakeStream({ isTTY: false });
  const clock = fakeClock();
  const p = createProgress({ stream, total: 100, label: "events", logEveryMs: 1_000, now: clock.now });
  p.update(10);
  clock.advance(999);
  p.update(20);
  clock.advance(1);
  p.update(30, "customer 2");
  clock.advance(500);
  p.update(100);
  assert.equal(stream.writes, [`events ${renderBar(10, 100)}\n`, `events ${renderBar(30, 100, { detail: "customer 2" })}\n`]);
  assert.ok(stream.writes.every((w) => !w.includes("\r") && !w.includes("\u001b")));
});
log("waits 5 s between lines by default", () => {
  const stream = fakeStream();
  const clock = fakeClock();
  const p = createProgress({ stream, total: 10, label: "e", now: clock.now });
  p.update(1);
  clock.advance(4_999);
  p.update(2);
  clock.advance(1);
  p.update(3);
  assert.is(stream.writes.length, 2);
  assert.match(stream.writes[1], / 3\/10\n$/);
});
log("done prints the last state even when it was throttled", () => {
  const stream = fakeStream();
  const clock = fakeClock();
  const p = createProgress({ stream, total: 10, label: "events", logEveryMs: 1_000, now: clock.now });
  p.update(1);
  clock.advance(10);
  p.update(7, "last");
  p.done();
  assert.equal(stream.writes, [`events ${renderBar(1, 10)}\n`, `events ${renderBar(7, 10, { detail: "last" })}\n`]);
});
log.run();

const quiet = suite("createProgress() disabled");
quiet("enabled: false prints nothing on a terminal or in a log", () => {
  for (const isTTY of [true, false]) {
    const stream = fakeStream({ isTTY });
    const clock = fakeClock();
    const p = createProgress({ stream, total: 3, label: "events", enabled: false, logEveryMs: 1, now: clock.now });
    p.update(1);
    clock.advance(10_000);
    p.update(3);
    p.done();
    assert.equal(stream.writes, [], `isTTY ${isTTY}`);
  }
});
quiet.run();
