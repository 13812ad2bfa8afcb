// The Dockerfile of the metering job's image, checked as far as a machine without a Docker
// engine can: every COPY source exists and is not left out of the build context by
// .dockerignore, and every package lib/ and scripts/ import at run time is a runtime dependency
// (the image installs with `npm ci --omit=dev`), as is every file they import.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { builtinModules } from "node:module";
import { suite } from "uvu";
import * as assert from "uvu/assert";

const ROOT = new URL("../../", import.meta.url).pathname;
const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
/** Imports that are optional at run time (caught when missing): tsx is Node 20's fallback, and the image runs Node 24. */
const OPTIONAL = new Set(["tsx/esm/api"]);

const instructions = dockerfile.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
const copies = instructions.filter((l) => /^COPY\s/i.test(l)).map((l) => {
  const parts = l.trim().split(/\s+/).slice(1).filter((p) => !p.startsWith("--"));
  return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
});

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true })
    .flatMap((e) => e.isDirectory() ? files(`${dir}/${e.name}`) : /\.(mts|mjs|js)$/.test(e.name) ? [`${dir}/${e.name}`] : []);
}
/**
 * Run-time imports of a file: static ones without `import type`, and dynamic ones that are not
 * types (`import("x").Name`, `typeof import("x")` are erased; `import("x").then(…)` is not).
 */
function imports(path: string): string[] {
  const text = readFileSync(join(ROOT, path), "utf8");
  const statics = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?!type\s)[^"';]*?from\s*"([^"]+)"|(?:^|\n)\s*import\s+"([^"]+)"/g)].map((m) => m[1] ?? m[2]);
  const dynamics = [...text.matchAll(/import\s*\(\s*"([^"]+)"\s*\)/g)].filter((m) => {
    const after = text.slice(m.index! + m[0].length);
    const before = text.slice(Math.max(0, m.index! - 10), m.index!);
    return !/^\s*\.\s*(?!then\b)[A-Za-z_$]/.test(after) && !/typeof\s+$/.test(before);
  }).map((m) => m[1]);
  return [...statics, ...dynamics];
}
const packageOf = (spec: string) => spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
const copied = copies.flatMap((c) => c.sources.map((s) => s.replace(/\/$/, "")));

const D = suite("Dockerfile");

D("is built on Node 24, installs the runtime dependencies only, runs as a non-root user", () => {
  assert.match(dockerfile, /^FROM node:24[-\w.]*\s*$/m);
  assert.match(dockerfile, /^RUN npm ci --omit=dev\b/m);
  assert.match(dockerfile, /^WORKDIR \/app$/m);
  const user = instructions.filter((l) => /^USER\s/i.test(l)).at(-1);
  assert.ok(user && !/\broot\b|\b0\b/.test(user), `the last USER is not root: ${user}`);
  assert.match(instructions.filter((l) => /^CMD\s/i.test(l)).at(-1) ?? "", /"node", "scripts\/2-emit-meter\.mts"/);
});

D("every COPY source exists and is not excluded from the build context by .dockerignore", () => {
  assert.ok(copies.length >= 4);
  for (const source of copied) {
    assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: no such file or directory`);
    const top = source.split("/")[0];
    assert.not.ok(ignored.some((p) => p.replace(/\/$/, "") === top || p.replace(/\/$/, "") === source), `.dockerignore leaves out ${source}`);
  }
  for (const needed of ["package.json", "package-lock.json", "lib", "scripts", "templates"]) assert.ok(copied.includes(needed), `the image copies ${needed}`);
});

D(".dockerignore leaves out local state, development runtimes and modules, tests and the sandbox", () => {
  for (const p of ["metering-data", ".runtimes", "node_modules", "test", "sandbox", ".git"]) assert.ok(ignored.includes(p), `.dockerignore has ${p}`);
});

D("every package lib/ and scripts/ import at run time is in dependencies, not devDependencies", () => {
  const wrong: string[] = [];
  const builtins = new Set(builtinModules);
  for (const file of [...files("lib"), ...files("scripts")]) {
    for (const spec of imports(file)) {
      if (spec.startsWith(".") || spec.startsWith("node:") || builtins.has(spec) || OPTIONAL.has(spec)) continue;
      if (!pkg.dependencies[packageOf(spec)]) wrong.push(`${file} imports ${spec} (${pkg.devDependencies[packageOf(spec)] ? "a devDependency" : "not a dependency"})`);
    }
  }
  assert.equal(wrong, []);
});

D("every file lib/ and scripts/ import lies inside what the image copies", () => {
  const outside: string[] = [];
  for (const file of [...files("lib"), ...files("scripts")]) {
    for (const spec of imports(file).filter((s) => s.startsWith("."))) {
      const target = relative(ROOT, normalize(join(ROOT, dirname(file), spec)));
      if (!copied.some((c) => target === c || target.startsWith(`${c}/`))) outside.push(`${file} imports ${spec}`);
    }
  }
  assert.equal(outside, []);
});

D.run();
