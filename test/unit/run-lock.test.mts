import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { readFile, stat, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { acquireRunLock, isStale, processExists, type LockInfo } from "../../lib/core/lock.mts";
import { RunLockedError } from "../../lib/core/errors.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import { tempDir } from "./_support.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir("metering-lock-");
  try {
    await fn(dir);
  } finally {
    await cleanup();
  }
}

/** The pid of a process that has exited (it ran and was reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  assert.ok(child.pid && !processExists(child.pid));
  return child.pid!;
}

const lockInfo = (over: Partial<LockInfo> = {}): LockInfo => ({ pid: process.pid, host: hostname(), token: "t-other", startedAt: "2026-11-23T10:00:00.000Z", ...over });

const exists = suite("processExists()");
exists("is true for this process and false for an exited one", () => {
  assert.is(processExists(process.pid), true);
  assert.is(processExists(deadPid()), false);
});
exists("is false for pids that cannot be processes", () => {
  for (const pid of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) assert.is(processExists(pid), false, String(pid));
});
exists.run();

const stale = suite("isStale()");
const NOW = Date.parse("2026-11-23T12:00:00Z");
stale("a lock of another host, or unreadable, untouched for longer than staleMs is stale", () => {
  const alive = () => true;
  assert.is(isStale({ info: lockInfo({ host: "other" }), mtimeMs: NOW - 60_001 }, { staleMs: 60_000, now: NOW, host: "me", exists: alive }), true);
  assert.is(isStale({ mtimeMs: NOW - 60_001 }, { staleMs: 60_000, now: NOW, host: "me", exists: alive }), true);
});
stale("a lock of a live process on this host is never stale, however old it looks (a late heartbeat, a moved clock)", () => {
  const alive = () => true;
  assert.is(isStale({ info: lockInfo({ host: "me" }), mtimeMs: NOW - 60_001 }, { staleMs: 60_000, now: NOW, host: "me", exists: alive }), false);
  assert.is(isStale({ info: lockInfo({ host: "me" }), mtimeMs: NOW - 86_400_000 }, { staleMs: 60_000, now: NOW, host: "me", exists: alive }), false);
  assert.is(isStale({ info: lockInfo({ host: "me" }), mtimeMs: NOW + 86_400_000 }, { staleMs: 60_000, now: NOW, host: "me", exists: alive }), false);
});
stale("exactly staleMs old is not yet stale", () => {
  assert.is(isStale({ info: lockInfo({ host: "other" }), mtimeMs: NOW - 60_000 }, { staleMs: 60_000, now: NOW, host: "me" }), false);
});
stale("on this host a fresh lock is stale exactly when its process is gone", () => {
  const asked: number[] = [];
  const info = lockInfo({ host: "me", pid: 4242 });
  assert.is(isStale({ info, mtimeMs: NOW }, { staleMs: 60_000, now: NOW, host: "me", exists: (p) => (asked.push(p), false) }), true);
  assert.is(isStale({ info, mtimeMs: NOW }, { staleMs: 60_000, now: NOW, host: "me", exists: (p) => (asked.push(p), true) }), false);
  assert.equal(asked, [4242, 4242]);
});
stale("on another host, or without readable content, a fresh lock is respected without asking about the pid", () => {
  let asked = false;
  const exists = () => ((asked = true), false);
  assert.is(isStale({ info: lockInfo({ host: "other" }), mtimeMs: NOW - 59_000 }, { staleMs: 60_000, now: NOW, host: "me", exists }), false);
  assert.is(isStale({ mtimeMs: NOW }, { staleMs: 60_000, now: NOW, host: "me", exists }), false);
  assert.is(asked, false);
});
stale.run();

const acquire = suite("acquireRunLock()");
acquire("creates <dir>/emit.lock naming this process, and release removes it", async () => {
  await inTemp(async (dir) => {
    const lock = await acquireRunLock({ dir: join(dir, "data"), waitMs: 0 });
    assert.is(lock.path, join(dir, "data", "emit.lock"));
    const info = JSON.parse(await readFile(lock.path, "utf8")) as LockInfo;
    assert.equal(info, lock.info);
    assert.equal([info.pid, info.host], [process.pid, hostname()]);
    assert.match(info.token, /^[0-9a-f-]{36}$/);
    assert.is((await stat(lock.path)).mode & 0o777, 0o600);
    await lock.release();
    await stat(lock.path).then(() => assert.unreachable("lock file left behind"), (e) => assert.is(e.code, "ENOENT"));
  });
});
acquire("a second acquire with waitMs 0 throws RunLockedError naming the holder", async () => {
  await inTemp(async (dir) => {
    const first = await acquireRunLock({ dir, name: "job", waitMs: 0 });
    try {
      await acquireRunLock({ dir, name: "job", waitMs: 0 });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RunLockedError);
      assert.is((error as RunLockedError).code, "ERR_RUN_LOCKED");
      assert.is((error as RunLockedError).path, join(dir, "job.lock"));
      assert.is((error as Error).message,
        `Cannot start: process ${process.pid} on ${hostname()}, running since ${first.info.startedAt} holds ${join(dir, "job.lock")}; wait for it to finish, or delete the file if that run is gone`);
    } finally {
      await first.release();
    }
  });
});
acquire("locks of other names do not block each other", async () => {
  await inTemp(async (dir) => {
    const a = await acquireRunLock({ dir, name: "a", waitMs: 0 });
    const b = await acquireRunLock({ dir, name: "b", waitMs: 0 });
    await a.release();
    await b.release();
  });
});
acquire("waits for the holder, tells onWait once, and takes the lock after release", async () => {
  await inTemp(async (dir) => {
    const first = await acquireRunLock({ dir, waitMs: 0 });
    const waits: (LockInfo | undefined)[] = [];
    let waiting!: () => void;
    const told = new Promise<void>((r) => (waiting = r));
    let settled = false;
    const second = acquireRunLock({ dir, waitMs: 600_000, pollMs: 10, onWait: (h) => (waits.push(h), waiting()) });
    second.then(() => (settled = true), () => (settled = true));
    await told;
    await sleep(120);
    assert.not.ok(settled, "still waiting while the first run holds the lock");
    await first.release();
    const lock = await second;
    assert.equal(waits, [first.info]);
    assert.is.not(lock.info.token, first.info.token);
    assert.equal(JSON.parse(await readFile(lock.path, "utf8")), lock.info);
    await lock.release();
  });
});
acquire("gives up after waitMs with RunLockedError", async () => {
  await inTemp(async (dir) => {
    const first = await acquireRunLock({ dir, waitMs: 0 });
    const t0 = Date.now();
    try {
      await acquireRunLock({ dir, waitMs: 150, pollMs: 20 });
      assert.unreachable();
    } catch (error) {
      assert.is((error as RunLockedError).code, "ERR_RUN_LOCKED");
      assert.ok(Date.now() - t0 >= 140, "waited about waitMs");
    } finally {
      await first.release();
    }
  });
});
acquire("takes over at once a lock naming a dead process on this host", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "emit.lock");
    await writeFile(path, JSON.stringify(lockInfo({ pid: deadPid(), token: "dead" })));
    const lock = await acquireRunLock({ dir, waitMs: 0 });
    assert.is(JSON.parse(await readFile(path, "utf8")).token, lock.info.token);
    await lock.release();
  });
});
acquire("respects a fresh lock of another host until it is older than staleMs, then takes it over", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "emit.lock");
    // Its pid is dead on this machine, but a pid of another host says nothing: only the age counts.
    await writeFile(path, JSON.stringify(lockInfo({ host: "cloudshell-elsewhere", pid: deadPid(), token: "remote" })));
    try {
      await acquireRunLock({ dir, waitMs: 0, staleMs: 60_000 });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RunLockedError);
      assert.match((error as Error).message, /on cloudshell-elsewhere/);
    }
    const old = new Date(Date.now() - 61_000);
    await utimes(path, old, old);
    const lock = await acquireRunLock({ dir, waitMs: 0, staleMs: 60_000 });
    assert.is(JSON.parse(await readFile(path, "utf8")).token, lock.info.token);
    await lock.release();
  });
});
acquire("an unreadable lock file is judged by its age alone", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "emit.lock");
    await writeFile(path, "{torn");
    try {
      await acquireRunLock({ dir, waitMs: 0 });
      assert.unreachable();
    } catch (error) {
      assert.is((error as Error).message, `Cannot start: another run holds ${path}; wait for it to finish, or delete the file if that run is gone`);
    }
    const old = new Date(Date.now() - 120_000);
    await utimes(path, old, old);
    const lock = await acquireRunLock({ dir, waitMs: 0 });
    await lock.release();
  });
});
acquire("the holder touches its lock every heartbeatMs so it never looks stale", async () => {
  await inTemp(async (dir) => {
    const lock = await acquireRunLock({ dir, waitMs: 0, heartbeatMs: 30 });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock.path, old, old);
    // However late a busy machine runs the heartbeat: wait for it (up to 10 s, some 300 beats).
    const refreshed = async () => Date.now() - (await stat(lock.path)).mtimeMs < 60_000;
    const deadline = Date.now() + 10_000;
    while (!(await refreshed()) && Date.now() < deadline) await sleep(30);
    assert.ok(await refreshed(), "mtime refreshed");
    await lock.release();
    await sleep(60);
    await stat(lock.path).then(() => assert.unreachable("heartbeat recreated the file"), (e) => assert.is(e.code, "ENOENT"));
  });
});
acquire.run();

const release = suite("RunLock.release()");
release("does not delete a lock that another run holds now", async () => {
  await inTemp(async (dir) => {
    const lock = await acquireRunLock({ dir, waitMs: 0 });
    const other = JSON.stringify(lockInfo({ token: "someone-else" }));
    await writeFile(lock.path, other);
    await lock.release();
    assert.is(await readFile(lock.path, "utf8"), other);
  });
});
release("is harmless when the file is already gone, or called twice", async () => {
  await inTemp(async (dir) => {
    const lock = await acquireRunLock({ dir, waitMs: 0 });
    await lock.release();
    await lock.release();
    const again = await acquireRunLock({ dir, waitMs: 0 });
    await again.release();
  });
});
release.run();

const processes = suite("acquireRunLock() across processes");
processes("two processes started together hold the lock one after the other", async () => {
  await inTemp(async (dir) => {
    const script = join(dir, "holder.mts");
    const log = join(dir, "held.jsonl");
    await writeFile(script, [
      `import { appendFileSync } from "node:fs";`,
      `import { acquireRunLock } from ${JSON.stringify(join(ROOT, "lib", "core", "lock.mts"))};`,
      `const lock = await acquireRunLock({ dir: ${JSON.stringify(join(dir, "data"))}, waitMs: 20_000, pollMs: 10 });`,
      `const start = Date.now();`,
      `await new Promise((r) => setTimeout(r, 300));`,
      `const end = Date.now();`,
      `appendFileSync(${JSON.stringify(log)}, JSON.stringify({ pid: process.pid, start, end }) + "\\n");`,
      `await lock.release();`,
    ].join("\n"));
    const [cmd, ...args] = tsRunner();
    const runOne = () => new Promise<number | null>((res, rej) => {
      const child = spawn(cmd, [...args, script], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
      child.on("error", rej);
      child.on("exit", res);
    });
    assert.equal(await Promise.all([runOne(), runOne()]), [0, 0]);
    const held = (await readFile(log, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { pid: number; start: number; end: number });
    assert.is(held.length, 2);
    assert.is.not(held[0].pid, held[1].pid);
    const [first, second] = held.sort((a, b) => a.start - b.start);
    assert.ok(first.end - first.start >= 290 && second.end - second.start >= 290, "each held it about 300 ms");
    assert.ok(second.start >= first.end, `held intervals overlap: ${JSON.stringify(held)}`);
  });
});
processes.run();
