import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compileCacheDir, enableCompileCache } from "../../lib/core/compile-cache.mts";
import { NODE24_PATH } from "../../sandbox/core/runtime.mts";
import { tempDir } from "./_support.mts";

const ROOT = new URL("../../", import.meta.url).pathname;
const T = suite("enableCompileCache()");
T("lives in the user's own cache directory, not a shared one", () => {
  assert.match(compileCacheDir(), /\/\.cache\/metering-federation\/node-compile-cache$/);
});
T("never fails: a directory that cannot be made leaves the cache off", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    assert.is(enableCompileCache(join(file, "cache")), undefined);
  } finally {
    await cleanup();
  }
});
T("on Node 24, turns the cache on in the directory and fills it when the process ends", async () => {
  const node24 = join(ROOT, NODE24_PATH);
  if (!existsSync(node24)) {
    console.log("  skipped: no Node 24 in .runtimes (npm run runtimes)");
    return;
  }
  const { dir, cleanup } = await tempDir();
  try {
    const cache = join(dir, "cache");
    const script = `import { enableCompileCache } from ${JSON.stringify(join(ROOT, "lib/core/compile-cache.mts"))};
      const on = enableCompileCache(${JSON.stringify(cache)});
      await import(${JSON.stringify(join(ROOT, "lib/metering/usage-file.mts"))});
      console.log(on);`;
    const entry = join(dir, "entry.mts");
    writeFileSync(entry, script);
    const { NODE_DISABLE_COMPILE_CACHE: _off, NODE_COMPILE_CACHE: _dir, ...env } = process.env;
    const r = spawnSync(node24, [entry], { encoding: "utf8", env });
    assert.is(r.status, 0, r.stderr);
    assert.ok(r.stdout.trim().startsWith(cache), r.stdout);
    assert.ok(readdirSync(cache, { recursive: true }).length > 0, "entries written at exit");
  } finally {
    await cleanup();
  }
});
T.run();
