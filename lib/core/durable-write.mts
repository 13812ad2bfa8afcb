// Writing a file's bytes so that a record counts only when all of it is on disk. One write(2)
// may write less than asked and still succeed (a nearly full disk, a quota on an SMB share such
// as Cloud Shell's clouddrive); Node's FileHandle.write returns that short count and leaves the
// rest unwritten. No library we use covers it, so this loop is ours.
import type { FileHandle } from "node:fs/promises";

/**
 * Writes every byte of `data` at the handle's position (the end, for a file opened to append),
 * then fsyncs. The write after a short one fails with the real cause (ENOSPC, EDQUOT, …); a
 * write that makes no progress is an EIO error rather than a loop. Throws the system's error.
 * Returns how long the fsync took (on a network share each one is a round trip).
 */
export async function writeFully(handle: FileHandle, data: string | Uint8Array): Promise<{ syncMs: number }> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    if (!(bytesWritten > 0)) throw Object.assign(new Error("the write made no progress"), { code: "EIO" });
    offset += bytesWritten;
  }
  const t0 = performance.now();
  await handle.sync();
  return { syncMs: performance.now() - t0 };
}
