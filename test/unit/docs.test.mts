// The repository documents the Azure behaviour it relies on in docs/azure-behaviour.md and
// points nowhere outside itself. These checks keep it so: no file names the team's private
// notes, every section a comment cites exists, and every sandbox option is documented.
import { execFileSync } from "node:child_process";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_OPTIONS } from "../../sandbox/core/state.mts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOC = "docs/azure-behaviour.md";
const SKIP_DIRS = new Set([".git", "node_modules", ".runtimes"]);

/** Tracked and untracked-but-not-ignored files (git), else every file below the root outside SKIP_DIRS. */
function repositoryFiles(): string[] {
  let names: string[];
  try {
    const out = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" });
    names = out.split("\0").filter(Boolean);
  } catch {
    names = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (!SKIP_DIRS.has(e.name) && !e.name.startsWith(".sandbox")) walk(rel);
        } else if (e.isFile()) names.push(rel);
      }
    };
    walk("");
  }
  // Only regular files (the symlinked node_modules/.runtimes of a worktree show up as entries).
  return names.filter((n) => !n.split("/").some((seg) => SKIP_DIRS.has(seg))).filter((n) => {
    try {
      return lstatSync(join(ROOT, n)).isFile();
    } catch {
      return false; // deleted but still in the index
    }
  });
}

/** Text files only: a NUL byte marks a binary. */
function textFiles(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  for (const name of repositoryFiles()) {
    const text = readFileSync(join(ROOT, name), "utf8");
    if (!text.includes("\0")) out.push({ name, text });
  }
  return out;
}

const FILES = textFiles();
const doc = FILES.find((f) => f.name === DOC);

/** Section numbers of the doc's headings: `##` to `####`, the section sign, the number (1, 1.4). */
function headings(text: string): string[] {
  return [...text.matchAll(/^#{2,4} §(\d+(?:\.\d+)*)\s/gm)].map((m) => m[1]);
}

// Built from pieces so that this file does not match itself.
const FORBIDDEN = [
  ["azure", "facts"].join("-"),
  ["..", "shared"].join("/"),
  ["/work", "shared"].join("/"),
  ["facts", "\u00a7"].join(" "),
  ["facts", "sheet"].join(" "),
  ["facts", "sheet"].join("-"),
];

const outside = suite("nothing points outside the repository");
outside("no file mentions the private notes or their directory", () => {
  assert.ok(FILES.length > 50, `found only ${FILES.length} files under ${ROOT}`);
  const hits: string[] = [];
  for (const { name, text } of FILES) {
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      const lower = line.toLowerCase();
      for (const word of FORBIDDEN) if (lower.includes(word)) hits.push(`${name}:${i + 1}: ${word}`);
    });
  }
  assert.equal(hits, []);
});
outside.run();

const sections = suite(DOC);
sections("exists and numbers its sections once each, every subsection under its section", () => {
  assert.ok(doc, `${DOC} is missing`);
  const nums = headings(doc.text);
  assert.ok(nums.length >= 30, `only ${nums.length} numbered headings`);
  assert.equal(nums.filter((n, i) => nums.indexOf(n) !== i), [], "duplicate section numbers");
  const orphans = nums.filter((n) => n.includes(".") && !nums.includes(n.slice(0, n.lastIndexOf("."))));
  assert.equal(orphans, [], "subsections without their section heading");
});
sections("every section a file cites exists, and no file cites a bare § without naming the doc", () => {
  const known = new Set(headings(doc!.text));
  const missing: string[] = [];
  const bare: string[] = [];
  for (const { name, text } of FILES) {
    text.split("\n").forEach((line, i) => {
      const where = `${name}:${i + 1}`;
      if (name === DOC) {
        // Cross references inside the doc itself.
        for (const m of line.matchAll(/§(\d+(?:\.\d+)*)/g)) if (!line.startsWith("#") && !known.has(m[1])) missing.push(`${where}: §${m[1]}`);
        return;
      }
      const at = line.search(/azure-behaviour\.md/);
      for (const m of line.matchAll(/§(\d+(?:\.\d+)*)/g)) {
        if (at >= 0 && m.index! > at) {
          if (!known.has(m[1])) missing.push(`${where}: §${m[1]}`);
        } else if (!/RFC \d+ $/.test(line.slice(0, m.index!))) {
          bare.push(`${where}: §${m[1]} (cite it as ${DOC} §${m[1]})`);
        }
      }
    });
  }
  assert.equal(missing, [], "cited sections that are not headings of the doc");
  assert.equal(bare, [], "section citations that do not name the doc");
});
sections("names every sandbox option (PATCH /options) and only real ones", () => {
  const keys: string[] = [];
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) walk(v as Record<string, unknown>, `${prefix}${k}.`);
      else keys.push(`${prefix}${k}`);
    }
  };
  walk(DEFAULT_OPTIONS as unknown as Record<string, unknown>, "");
  const groups = Object.keys(DEFAULT_OPTIONS).join("|");
  const named = new Set([...doc!.text.matchAll(new RegExp("`((?:" + groups + ")\\.[A-Za-z]+)`", "g"))].map((m) => m[1]));
  assert.equal(keys.filter((k) => !named.has(k)), [], "options the doc does not mention");
  assert.equal([...named].filter((k) => !keys.includes(k)), [], "options the doc names that do not exist");
});
sections("README and docs/internals.md link to it", () => {
  for (const name of ["README.md", "docs/internals.md"]) {
    const text = FILES.find((f) => f.name === name)?.text ?? "";
    assert.ok(text.includes("azure-behaviour.md"), `${name} does not point at ${DOC}`);
  }
});
sections.run();

// A guard on the guard: the file list really covers the code that cites the doc.
const coverage = suite("the scan");
coverage("reads lib, sandbox, scripts, test and docs", () => {
  const dirs = new Set(FILES.map((f) => relative(ROOT, join(ROOT, f.name)).split("/")[0]));
  for (const d of ["lib", "sandbox", "scripts", "test", "docs", "templates"]) assert.ok(dirs.has(d), `no file of ${d}/ was scanned`);
});
coverage.run();
