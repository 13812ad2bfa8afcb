// A PATH a test builds for itself, so that what a script finds on it does not depend on what
// this machine has installed (Debian's azure-cli puts an `az` in /usr/bin, for one).
import { existsSync } from "node:fs";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export interface OnlyPath {
  /** The PATH value: one directory holding nothing but the requested tools. */
  PATH: string;
  /** Removes the directory. */
  remove(): Promise<void>;
}

/** Where `name` is on `path` (first match), or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * A PATH of one fresh directory with symlinks to just `tools` (looked up on this process's PATH;
 * a missing one throws) and to the runtime running the tests under its own name (`node`,
 * `deno`): a machine that has those and nothing else.
 */
export async function pathWithOnly(tools: string[]): Promise<OnlyPath> {
  const dir = await mkdtemp(join(tmpdir(), "metering-path-"));
  const links = new Map<string, string>([[basename(process.execPath), process.execPath]]);
  for (const tool of tools) {
    const target = findOnPath(tool);
    if (!target) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`Cannot build a PATH with ${tool}: not found on ${process.env.PATH}`);
    }
    links.set(tool, target);
  }
  for (const [name, target] of links) await symlink(target, join(dir, name));
  return { PATH: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
