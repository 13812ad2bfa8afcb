// A small file system that really fills up, for tests of what happens when the data directory's
// disk is full: a tmpfs mounted by root. Where mounting is not allowed (not root, no tmpfs), the
// caller gets the reason to skip with, never a fake.
import { spawnSync } from "node:child_process";
import { mkdtemp, open, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Tmpfs {
  dir: string;
  /** Fills the file system to the last byte with `filler`, then frees about `freeBytes` (whole pages). */
  fillLeaving(freeBytes: number): Promise<void>;
  /** Deletes the filler: the disk has room again. */
  unfill(): Promise<void>;
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `sizeBytes`; returns it, or `{ skip }` saying why it cannot be mounted here. */
export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs | { skip: string }> {
  const dir = await mkdtemp(join(tmpdir(), "metering-tmpfs-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0700`, "tmpfs", dir], { encoding: "utf8" });
  if (r.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}); run the tests as root to include the full-disk cases` };
  }
  const filler = join(dir, "filler");
  return {
    dir,
    async fillLeaving(freeBytes) {
      const handle = await open(filler, "a");
      const chunk = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const { bytesWritten } = await handle.write(chunk, 0, chunk.length);
          if (bytesWritten < chunk.length) break;
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      } finally {
        await handle.close();
      }
      await truncate(filler, Math.max(0, (await stat(filler)).size - freeBytes));
    },
    async unfill() {
      await rm(filler, { force: true });
    },
    async unmount() {
      spawnSync("umount", [dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
