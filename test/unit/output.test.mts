// lib/cli/output.mts: tables that fit a terminal (Cloud Shell: 80 columns), label/value lines,
// the line writers, and the widths they measure with.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  DEFAULT_WIDTH, displayWidth, ELLIPSIS, jsonPieces, lineWriters, renderFields, renderTable, shortenMiddle, widthOf, wrapText,
} from "../../lib/cli/output.mts";

const SUB = "998924ac-3f47-4b8a-af68-c30c6d16e086";
const MRG = "mrg-metered-analytics-fabrikam";
const widest = (lines: string[]) => Math.max(...lines.map(displayWidth));

const width = suite("displayWidth()");
width("counts code points, not UTF-16 units: … and ✓ take one column, a CJK character two", () => {
  assert.is(ELLIPSIS.length, 1);
  assert.is(displayWidth("…"), 1);
  assert.is(displayWidth("a…b"), 3);
  assert.is(displayWidth("✓ ok"), 4);
  assert.is(displayWidth("日本"), 4);
  assert.is(displayWidth("😀"), 2, "one code point, two UTF-16 units, two columns");
  assert.is(displayWidth("e\u0301"), 1, "a combining accent takes no column");
});
width("ignores terminal colour sequences", () => {
  assert.is(displayWidth("\x1b[1mbold\x1b[0m"), 4);
});
width.run();

const shorten = suite("shortenMiddle()");
shorten("keeps a value that fits; else both ends around …, in exactly the width", () => {
  assert.is(shortenMiddle("short", 10), "short");
  assert.is(shortenMiddle(SUB, 17), "998924ac…6d16e086");
  for (let w = 1; w <= 40; w++) assert.is(displayWidth(shortenMiddle(SUB, w)), Math.min(w, SUB.length), `width ${w}`);
  assert.is(shortenMiddle(SUB, 0), "");
});
shorten("never cuts a wide character in half", () => {
  const s = shortenMiddle("日本語のテキスト", 7);
  assert.ok(displayWidth(s) <= 7, s);
  assert.ok(s.includes(ELLIPSIS));
});
shorten.run();

const wrap = suite("wrapText()");
wrap("breaks between words, then after path segments, within the width", () => {
  assert.equal(wrapText("one two three", 8), ["one two", "three"]);
  assert.equal(wrapText("/subscriptions/s/resourceGroups/rg", 20), ["/subscriptions/s/", "resourceGroups/rg"]);
  assert.equal(wrapText("abcdefghij", 4), ["abcd", "efgh", "ij"]);
  assert.equal(wrapText("fits", 10), ["fits"]);
});
wrap.run();

const table = suite("renderTable()");
table("header row, aligned columns, numbers to the right, no trailing spaces", () => {
  const lines = renderTable([["cpu", "5"], ["storage-gb", "12.5"]], { columns: ["DIMENSION", { header: "QUANTITY", align: "right" }] });
  assert.equal(lines, [
    "DIMENSION   QUANTITY",
    "cpu                5",
    "storage-gb      12.5",
  ]);
});
table("no rows: the header and the caller's line", () => {
  assert.equal(renderTable([], { columns: ["A", "B"], empty: "(no managed applications)" }), ["A  B", "(no managed applications)"]);
  assert.equal(renderTable([], { columns: ["A", "B"] }), ["A  B"]);
});
table("a table wider than the width shortens the fittable columns in the middle, first by shrinkOrder", () => {
  const rows = [[SUB, MRG, "silver", "Succeeded", "yes"], ["4b3d4bf0-047a-4e81-9ab6-7d389fcbd0c4", "mrg-x", "gold", "Succeeded", "no"]];
  const columns = [
    { header: "SUBSCRIPTION", fit: "middle" as const, minWidth: 13, shrinkOrder: 0 },
    { header: "MANAGED RESOURCE GROUP", fit: "middle" as const, shrinkOrder: 1 },
    "PLAN", "STATE", "CONNECTED",
  ];
  const lines = renderTable(rows, { columns });
  assert.ok(widest(lines) <= DEFAULT_WIDTH, lines.join("\n"));
  assert.ok(lines[1].includes(MRG), "the group name is whole: the subscription gave way first");
  assert.match(lines[1], /^998924ac-…/);
  assert.ok(lines[1].includes(ELLIPSIS));
  for (const w of [70, 100]) assert.ok(widest(renderTable(rows, { columns, width: w })) <= w, `width ${w}`);
  // 13 + 22 (a column keeps its header whole) + 6 + 9 + 9 + 4 gaps: the narrowest it gets.
  assert.is(widest(renderTable(rows, { columns, width: 40 })), 67);
  assert.ok(renderTable(rows, { columns, width: Infinity })[1].includes(SUB), "Infinity never shortens");
});
table("counts … as one column when it measures the table", () => {
  const lines = renderTable([["x".repeat(50), "y".repeat(50)]], { columns: [{ header: "A", fit: "middle" }, { header: "B", fit: "middle" }], width: 40 });
  for (const line of lines) assert.ok(displayWidth(line) <= 40, `${displayWidth(line)}: ${line}`);
  assert.is(displayWidth(lines[1]), 40);
});
table("wrap columns break a cell over lines, the other cells on the first", () => {
  const lines = renderTable([["a", "one two three four"]], { columns: ["K", { header: "TEXT", fit: "wrap", minWidth: 4 }], width: 12 });
  assert.equal(lines, ["K  TEXT", "a  one two", "   three", "   four"]);
});
table("when even the narrowest columns do not fit, it is wider rather than losing a column", () => {
  const lines = renderTable([["abcdefghij", "klmnopqrst"]], { columns: ["FIRST", "SECOND"], width: 10 });
  assert.equal(lines[1], "abcdefghij  klmnopqrst");
});
table.run();

const fields = suite("renderFields()");
fields("pads the labels; wraps a long value under the values, never shortens it", () => {
  assert.equal(renderFields([["kid", "abc"], ["issuer", "https://x"]]), ["kid     abc", "issuer  https://x"]);
  const uri = `/subscriptions/${SUB}/resourceGroups/fabrikam-apps/providers/Microsoft.Solutions/applications/metered-analytics`;
  const lines = renderFields([["resourceUri", uri], ["planName", "silver"]]);
  assert.ok(widest(lines) <= DEFAULT_WIDTH, lines.join("\n"));
  assert.is(lines.slice(0, -1).map((l) => l.slice(13)).join(""), uri, "the lines join back to the value");
  assert.match(lines[1], /^ {13}\S/);
  assert.is(renderFields([["resourceUri", uri]], { width: Infinity }).length, 1);
});
fields.run();

const writers = suite("lineWriters() and widthOf()");
writers("out goes to stdout, progress to stderr, one line each", () => {
  const stdout: string[] = [], stderr: string[] = [];
  const w = lineWriters({ stdout: { write: (t: string) => stdout.push(t) }, stderr: { write: (t: string) => stderr.push(t) } });
  w.out("data");
  w.progress("note");
  assert.equal([stdout, stderr], [["data\n"], ["note\n"]]);
});
writers("a terminal's columns, else 80", () => {
  assert.is(widthOf({ write: () => {}, isTTY: true, columns: 132 }), 132);
  assert.is(widthOf({ write: () => {}, isTTY: false, columns: 132 }), 80);
  assert.is(widthOf({ write: () => {}, isTTY: true, columns: 10 }), 80, "a silly size is ignored");
  assert.is(widthOf(undefined), 80);
});
writers.run();

const pieces = suite("jsonPieces()");
const report = (i: number) => ({ ok: i % 3 !== 0, status: i % 3 ? "Accepted" : "Duplicate", line: i + 2, event: { dimension: `dim-${i}`, quantity: i / 4, note: undefined }, tags: [i, null, "x\ny"] });
pieces("joined with newlines, exactly JSON.stringify(value, null, 2), whatever the piece size", () => {
  const events = Array.from({ length: 1000 }, (_, i) => report(i));
  const value = { ok: true, counts: { Accepted: 666, Duplicate: 334 }, skipped: [], nothing: undefined, fn: () => 1, events, after: { done: "yes" } };
  for (const per of [1, 7, 256, 1000, 5000]) {
    const got = [...jsonPieces(value, { stream: ["events", "skipped"], itemsPerPiece: per })];
    assert.is(got.join("\n"), JSON.stringify(value, null, 2), `${per} per piece`);
    assert.ok(got.every((p) => !p.endsWith("\n")), "whole lines: a line writer adds the newline");
    // "{", ok, counts, skipped (empty: one line), `"events": [`, the groups, "],", after, "}"
    if (per === 7) assert.is(got.length, 1 + 3 + 1 + Math.ceil(1000 / 7) + 1 + 1 + 1, "the streamed array is in groups of 7");
  }
});
pieces("empty objects and arrays, and array items JSON writes as null", () => {
  for (const value of [{}, { events: [] }, { a: undefined }, { events: [undefined, () => 1, 1] }, { events: [[], {}, [[1]]], z: 1 }]) {
    assert.is([...jsonPieces(value as Record<string, unknown>, { stream: ["events"] })].join("\n"), JSON.stringify(value, null, 2));
  }
});
pieces("no piece holds more than its group of a streamed array", () => {
  const events = Array.from({ length: 10_000 }, (_, i) => report(i));
  const whole = JSON.stringify({ events }, null, 2).length;
  const largest = Math.max(...[...jsonPieces({ events }, { stream: ["events"], itemsPerPiece: 100 })].map((p) => p.length));
  assert.ok(largest * 50 < whole, `largest piece ${largest} of ${whole}`);
});
pieces.run();

const all = suite("lineWriters().outAll()");
all("writes every piece with its newline, and waits for drain while the stream is full", async () => {
  const written: string[] = [];
  let full = false;
  let onDrain: (() => void) | undefined;
  const stdout = {
    write(text: string) {
      written.push(text);
      full = written.length % 2 === 0;
      return !full;
    },
    once(_event: "drain", listener: () => void) {
      onDrain = listener;
    },
  };
  const { outAll } = lineWriters({ stdout, stderr: { write: () => true } });
  const done = outAll(["a", "b", "c", "d"]);
  let finished = false;
  void done.then(() => (finished = true));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(written, ["a\n", "b\n"], "stopped at the full buffer");
  assert.is(finished, false);
  onDrain!();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(written, ["a\n", "b\n", "c\n", "d\n"]);
  onDrain!();
  await done;
});
all.run();
