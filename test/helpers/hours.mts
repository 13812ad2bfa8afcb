// UTC hours for the usage events of a test file. A script takes `hours-ago` from its own clock
// when it starts, so a test that names hours relative to the clock breaks when the hour turns
// between two runs (or between a run and its check), which a long file on a busy machine often
// spans: "1 hour ago" then names what "2 hours ago" named before. A test picks absolute hours
// instead, fixed when the file starts, and converts one to `hours-ago` just before each run.

import { slowestRunMs } from "./scripts.mts";

export const HOUR_MS = 3_600_000;

/** Start of the UTC hour `hoursAgo` hours back from `now`, in epoch milliseconds. */
export function hourStart(hoursAgo: number, now = Date.now()): number {
  return Math.floor((now - hoursAgo * HOUR_MS) / HOUR_MS) * HOUR_MS;
}

/** The hour this file started in. */
const FILE_HOUR = hourStart(0);

/**
 * The start of the UTC hour `n` hours before the hour this file started in (1..22: inside the
 * API's 24-hour window for as long as a test file runs).
 */
export function hourBack(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 22) throw new RangeError(`Cannot name hour ${n} back: expected 1..22`);
  return FILE_HOUR - n * HOUR_MS;
}

/** `2026-11-23T10:00:00Z`: an hour as a usage file's effective-start-time. */
export function isoHour(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/**
 * The `hours-ago` argument that names the hour starting at `hourMs` for a script started now.
 * A script reads its clock while it starts, so close to the top of the hour this first waits
 * for the turn: closer than `startMs`, by default the slowest whole script run of this process
 * so far (at least 10 s), which is longer than any start-up of a script on this machine.
 */
export async function hoursAgoOf(hourMs: number, startMs = Math.max(10_000, slowestRunMs())): Promise<string> {
  const untilTurn = hourStart(0) + HOUR_MS - Date.now();
  if (untilTurn < startMs) await new Promise((r) => setTimeout(r, untilTurn + 10));
  return String(Math.round((hourStart(0) - hourMs) / HOUR_MS));
}
