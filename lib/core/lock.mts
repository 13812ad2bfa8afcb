// One submission run at a time per data directory: the run that holds `<name>.lock` reads
// the audit log, sends, and records outcomes; a second run waits for it. Without this, two
// runs could each see an event as open and both send it.
//
// The lock is a file created with O_EXCL holding {pid, host, token, startedAt}; its holder
// touches it every few seconds. It is stale when its process is gone (same host: then only
// that counts) or, held on another host (e.g. a Cloud Shell session on the same clouddrive),
// when it has not been touched for `staleMs`. Breaking a stale lock happens under a second O_EXCL file and only if the lock
// still holds the token that was judged stale, so two waiting runs cannot both take over.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { mkdir, open, readFile, rm, stat, utimes } from "node:fs/promises";
import { describeWriteError, RunLockedError, StateWriteError } from "./errors.mts";
import { writeFully } from "./durable-write.mts";

export interface LockInfo {
  pid: number;
  host: string;
  token: string;
  startedAt: string;
}

export interface RunLock {
  /** The lock file, or the lease's blob URL. */
  path: string;
  info: LockInfo;
  /**
   * Why this holder can no longer be sure it holds the lock (another run took it over, a lease
   * renewal failed), or undefined while it holds it. A run checks it before each send.
   */
  lost(): Error | undefined;
  release(): Promise<void>;
}

export interface AcquireRunLockOptions {
  dir: string;
  /** File name without `.lock`; default `emit`. */
  name?: string;
  /** How long to wait for another run; default 10 minutes. 0 fails at once. */
  waitMs?: number;
  /** A lock not touched for this long is stale; default 60 s. */
  staleMs?: number;
  /** How often the holder touches its lock; default 10 s. */
  heartbeatMs?: number;
  pollMs?: number;
  /** Told once when the run starts waiting, with the holder. */
  onWait?: (holder: LockInfo | undefined) => void;
}

/** Whether a process with this pid exists on this machine. */
export function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function _readInfo(path: string): Promise<{ info?: LockInfo; mtimeMs: number } | undefined> {
  try {
    const [text, s] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    let info: LockInfo | undefined;
    try {
      info = JSON.parse(text) as LockInfo;
    } catch {
      // Written but not yet filled in, or torn: judged by age alone.
    }
    return { info, mtimeMs: s.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Whether a lock is stale. On this host its process decides: the lock is stale exactly when that
 * process is gone, however old the file looks (a live run on a busy machine may touch it late, and
 * a clock that differs from the file system's must not break a live run's lock). Of another host,
 * or without readable content, only its age can tell: nobody touched it for staleMs.
 */
export function isStale(lock: { info?: LockInfo; mtimeMs: number }, options: { staleMs: number; now?: number; host?: string; exists?: (pid: number) => boolean }): boolean {
  const host = options.host ?? hostname();
  if (lock.info && lock.info.host === host) return !(options.exists ?? processExists)(lock.info.pid);
  const now = options.now ?? Date.now();
  return now - lock.mtimeMs > options.staleMs;
}

/**
 * Creates the lock file with its content, or returns false when it exists. A lock is never
 * left empty or half-written: if filling it fails (a full disk, a quota), the file is removed
 * again and StateWriteError says why, so the next run does not wait for a run that never was.
 */
async function _tryCreate(path: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw _writeError(path, error);
  }
  try {
    await writeFully(handle, content);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(path, { force: true });
    throw _writeError(path, error);
  }
  await handle.close();
  return true;
}

function _writeError(path: string, cause: unknown): StateWriteError {
  const errno = (cause as NodeJS.ErrnoException)?.code;
  return new StateWriteError(`Cannot create the lock ${path}: ${describeWriteError(cause)}; nothing was done`, { path, cause, ...(errno ? { errno } : {}) });
}

/** Removes the lock at `path` if it still holds `token` (or no readable content), under a breaker file. */
async function _breakStale(path: string, judged: { info?: LockInfo; mtimeMs: number }, staleMs: number): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await _tryCreate(breaker, String(process.pid)))) {
    // A breaker left by a run killed mid-break would block everyone: it is tiny-lived, so age decides.
    const b = await stat(breaker).catch(() => undefined);
    if (b && Date.now() - b.mtimeMs > staleMs) await rm(breaker, { force: true });
    return;
  }
  try {
    const now = await _readInfo(path);
    if (now && now.info?.token === judged.info?.token && now.mtimeMs === judged.mtimeMs) await rm(path, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
}

/**
 * Takes the run lock of a data directory, waiting while another live run holds it.
 * Throws RunLockedError when the wait runs out.
 *
 * @example
 * const lock = await acquireRunLock({ dir: dataDir });
 * try { … } finally { await lock.release(); }
 */
export async function acquireRunLock(options: AcquireRunLockOptions): Promise<RunLock> {
  const path = join(options.dir, `${options.name ?? "emit"}.lock`);
  const waitMs = options.waitMs ?? 600_000;
  const staleMs = options.staleMs ?? 60_000;
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const pollMs = options.pollMs ?? 200;
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const info: LockInfo = { pid: process.pid, host: hostname(), token: randomUUID(), startedAt: new Date().toISOString() };
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    if (await _tryCreate(path, JSON.stringify(info))) break;
    const holder = await _readInfo(path);
    if (!holder) continue;
    if (isStale(holder, { staleMs })) {
      await _breakStale(path, holder, staleMs);
      continue;
    }
    if (Date.now() >= deadline) {
      const who = holder.info ? `process ${holder.info.pid} on ${holder.info.host}, running since ${holder.info.startedAt}` : "another run";
      throw new RunLockedError(`Cannot start: ${who} holds ${path}; wait for it to finish, or delete the file if that run is gone`, { path });
    }
    if (!told) {
      options.onWait?.(holder.info);
      told = true;
    }
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
  let lost: Error | undefined;
  const timer = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
    // A lock that names another run now was taken over (judged stale by someone): say so.
    _readInfo(path).then((held) => {
      if (held?.info && held.info.token !== info.token) lost ??= new RunLockedError(`Lost the lock ${path}: process ${held.info.pid} on ${held.info.host} holds it now`, { path });
    }, () => {});
  }, heartbeatMs);
  (timer as { unref?: () => void }).unref?.();
  return {
    path,
    info,
    lost: () => lost,
    async release() {
      clearInterval(timer);
      const now = await _readInfo(path);
      if (now?.info?.token === info.token) await rm(path, { force: true });
    },
  };
}
