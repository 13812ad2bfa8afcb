// Node's compile cache: V8 keeps the code it compiled, and Node 22.18+/24 the JavaScript it
// stripped the TypeScript types from, in a directory, so the next start of a script skips both
// (Node 24 spent most of `--help` stripping types: 0.21 s of CPU, 0.05 s with the cache). Entries
// are checked against the source's hash, so an edited file is compiled again. Deno and Node 20
// have no such cache: nothing happens there.
import * as nodeModule from "node:module";
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The cache's directory: the user's own cache directory (`~/.cache`, private to the user: a
 * shared one such as /tmp would let another user plant code), never the data directory, which
 * may be a network share (Cloud Shell's clouddrive) where every read is a round trip.
 */
export function compileCacheDir(): string {
  return join(homedir(), ".cache", "metering-federation", "node-compile-cache");
}

/**
 * Turns the compile cache on for modules loaded from now on (a script's dynamic imports: the
 * publisher context, the Azure SDKs; a launcher's whole script). Never fails: a runtime without
 * the cache, a home that cannot be written or any other refusal leaves things as they were.
 * `NODE_DISABLE_COMPILE_CACHE=1` (read by Node) turns it off. Returns the directory when on.
 */
export function enableCompileCache(dir: string = compileCacheDir()): string | undefined {
  const enable = (nodeModule as { enableCompileCache?: (dir?: string) => { status: number; directory?: string } }).enableCompileCache;
  const status = (nodeModule as { constants?: { compileCacheStatus?: Record<string, number> } }).constants?.compileCacheStatus;
  if (typeof enable !== "function" || !status) return undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const result = enable(dir);
    return result.status === status.ENABLED || result.status === status.ALREADY_ENABLED ? result.directory : undefined;
  } catch {
    return undefined;
  }
}
