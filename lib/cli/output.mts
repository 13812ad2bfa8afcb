// What the scripts print, in one place: the line writers every script uses (data on stdout,
// progress and notes on stderr) and a table that fits the terminal (Cloud Shell: 80 columns).
// Pure: returns strings, or writes to the streams it is given; it never picks a stream itself.

/** The default width of a table: Azure Cloud Shell's terminal. */
export const DEFAULT_WIDTH = 80;

/** The mark that stands for the characters a shortened cell left out (one column wide). */
export const ELLIPSIS = "…";

/** Anything with `write`: process.stdout, process.stderr, a collector in tests. */
export interface TextStream {
  /** False when the stream's buffer is full (a pipe); then `drain` is emitted once it has room. */
  write(text: string): unknown;
  once?(event: "drain", listener: () => void): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** The two line writers of a script: `out` for data (stdout), `progress` for people (stderr). */
export interface LineWriters {
  /** One line of data on stdout (a newline is added). */
  out(text: string): void;
  /** One line of progress or a note on stderr (a newline is added); never data. */
  progress(text: string): void;
  /**
   * Lines of data (jsonPieces' pieces), each followed by a newline, waiting whenever stdout's
   * buffer is full: a pipe takes writes without blocking, so 100,000 events written at once
   * would sit in memory until the reader caught up.
   */
  outAll(pieces: Iterable<string>): Promise<void>;
}

/**
 * The line writers over two streams; a script passes `process` (its stdout and stderr).
 *
 * @example
 * const { out, progress } = lineWriters(process);
 */
export function lineWriters(streams: { stdout: TextStream; stderr: TextStream }): LineWriters {
  return {
    out: (text) => void streams.stdout.write(`${text}\n`),
    progress: (text) => void streams.stderr.write(`${text}\n`),
    async outAll(pieces) {
      const { stdout } = streams;
      for (const piece of pieces) {
        if (stdout.write(`${piece}\n`) === false && stdout.once) await new Promise<void>((resolve) => stdout.once!("drain", resolve));
      }
    },
  };
}

/**
 * The width a table on this stream should fit: the terminal's columns when it is one (at
 * least 40), else DEFAULT_WIDTH, so that piped output is the same on every machine.
 */
export function widthOf(stream: TextStream | undefined): number {
  const columns = stream?.isTTY ? stream.columns : undefined;
  return typeof columns === "number" && columns >= 40 ? columns : DEFAULT_WIDTH;
}

// Terminal control sequences take no columns (a colour, a bold).
// deno-lint-ignore no-control-regex
const ANSI_RE = /\u001b\[[0-9;?]*[A-Za-z]/g;

/** True for code points a terminal draws two columns wide (East Asian Wide and Fullwidth, emoji). */
function isWide(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) || (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd);
}

/** True for code points that take no column of their own (combining marks, joiners, variation selectors). */
function isZeroWidth(cp: number): boolean {
  return (cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f) || cp === 0x2060;
}

function charWidth(cp: number): number {
  return isZeroWidth(cp) ? 0 : isWide(cp) ? 2 : 1;
}

/**
 * The columns a string takes in a terminal: code points, not UTF-16 units (`…` is 1, `✓` is
 * 1, a CJK character 2), without terminal control sequences.
 *
 * @example
 * displayWidth("a…b") // 3
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text.replace(ANSI_RE, "")) width += charWidth(ch.codePointAt(0)!);
  return width;
}

/** The longest start of `text` that takes at most `width` columns. */
function headOf(text: string, width: number): string {
  let out = "", used = 0;
  for (const ch of text) {
    const w = charWidth(ch.codePointAt(0)!);
    if (used + w > width) break;
    out += ch;
    used += w;
  }
  return out;
}

/** The longest end of `text` that takes at most `width` columns. */
function tailOf(text: string, width: number): string {
  const chars = [...text];
  let out = "", used = 0;
  for (let i = chars.length - 1; i >= 0; i--) {
    const w = charWidth(chars[i].codePointAt(0)!);
    if (used + w > width) break;
    out = chars[i] + out;
    used += w;
  }
  return out;
}

/**
 * `text` in at most `width` columns: unchanged when it fits, else its start and end around
 * `…` (the start gets the extra column), so that both ends of an id stay recognisable.
 *
 * @example
 * shortenMiddle("998924ac-3f47-4b8a-af68-c30c6d16e086", 17) // "998924ac…6d16e086"
 */
export function shortenMiddle(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 1) return width === 1 ? ELLIPSIS : "";
  const keep = width - 1;
  return `${headOf(text, Math.ceil(keep / 2))}${ELLIPSIS}${tailOf(text, Math.floor(keep / 2))}`;
}

// Where a line may break, best first: between words, between path segments, then inside a word.
const BREAKS = [" ", "/", ",", "-", "."];

/**
 * `text` as lines of at most `width` columns, broken after a space, else a `/`, `,`, `-` or
 * `.`, in the second half of a line; else anywhere.
 *
 * @example
 * wrapText("/subscriptions/s/resourceGroups/rg", 20) // ["/subscriptions/s/", "resourceGroups/rg"]
 */
export function wrapText(text: string, width: number): string[] {
  if (width < 1 || displayWidth(text) <= width) return [text];
  const lines: string[] = [];
  let rest = text;
  while (displayWidth(rest) > width) {
    let cut = headOf(rest, width);
    for (const c of BREAKS) {
      const at = cut.lastIndexOf(c);
      if (at >= Math.floor(cut.length / 2)) {
        cut = cut.slice(0, at + 1);
        break;
      }
    }
    lines.push(cut.trimEnd());
    rest = rest.slice(cut.length).trimStart();
  }
  if (rest !== "") lines.push(rest);
  return lines;
}

/** A column of a table. */
export interface Column {
  /** The header, printed as given (the scripts use upper case). */
  header: string;
  /** `right` for numbers; default `left`. */
  align?: "left" | "right";
  /**
   * What happens to the column's cells when the table is too wide: `middle` keeps both ends
   * of a value around `…` (ids), `wrap` breaks it over lines (text), `none` (default) never
   * narrows it.
   */
  fit?: "middle" | "wrap" | "none";
  /** The narrowest the column becomes (never narrower than its header); default 8 for `middle`, else 1. */
  minWidth?: number;
  /** Columns with a lower number are narrowed first, down to their minWidth; default 0. */
  shrinkOrder?: number;
}

export interface TableOptions {
  /** Column headers, or columns. */
  columns: Array<string | Column>;
  /** The columns the table may take: default DEFAULT_WIDTH; `Infinity` never narrows a cell. */
  width?: number;
  /** Spaces between columns; default 2. */
  gap?: number;
  /** The line printed under the header when there are no rows, e.g. "No managed applications." */
  empty?: string;
}

function columnOf(c: string | Column): Required<Column> {
  const column = typeof c === "string" ? { header: c } : c;
  const fit = column.fit ?? "none";
  // A column is never narrower than its header: the header names the column whole.
  const minWidth = Math.max(displayWidth(column.header), column.minWidth ?? (fit === "middle" ? 8 : 1));
  return { align: "left", shrinkOrder: 0, ...column, fit, minWidth };
}

/** The width of each column so that the table fits `width`, narrowing the fittable columns by shrinkOrder, widest first. */
function fitWidths(natural: number[], columns: Array<Required<Column>>, width: number, gap: number): number[] {
  const widths = [...natural];
  let excess = widths.reduce((a, b) => a + b, 0) + gap * Math.max(0, widths.length - 1) - width;
  const orders = [...new Set(columns.map((c) => c.shrinkOrder))].sort((a, b) => a - b);
  for (const order of orders) {
    while (excess > 0) {
      // The widest column of this order that can still give up a column.
      let pick = -1;
      for (let i = 0; i < widths.length; i++) {
        const c = columns[i];
        if (c.fit === "none" || c.shrinkOrder !== order || widths[i] <= Math.min(c.minWidth, natural[i])) continue;
        if (pick === -1 || widths[i] > widths[pick]) pick = i;
      }
      if (pick === -1) break;
      widths[pick]--;
      excess--;
    }
  }
  return widths;
}

function pad(text: string, width: number, align: "left" | "right"): string {
  const fill = " ".repeat(Math.max(0, width - displayWidth(text)));
  return align === "right" ? fill + text : text + fill;
}

/**
 * A table as lines: the header row always, then one row per entry (or `empty` when there is
 * none), columns aligned, narrowed to fit `width` by shortening ids in the middle with `…` or
 * wrapping text. When even the narrowest columns do not fit, the lines are wider than `width`
 * rather than losing a column. No line ends in spaces.
 *
 * @example
 * renderTable([["a", "1"]], { columns: ["NAME", { header: "N", align: "right" }] })
 * // ["NAME  N", "a     1"]
 */
export function renderTable(rows: string[][], options: TableOptions): string[] {
  const columns = options.columns.map(columnOf);
  const gap = " ".repeat(options.gap ?? 2);
  const natural = columns.map((c, i) => Math.max(displayWidth(c.header), ...rows.map((r) => displayWidth(r[i] ?? ""))));
  const widths = fitWidths(natural, columns, options.width ?? DEFAULT_WIDTH, gap.length);
  const line = (cells: string[]) => cells.map((cell, i) => pad(cell, widths[i], columns[i].align)).join(gap).trimEnd();
  const lines = [line(columns.map((c) => c.header))];
  if (rows.length === 0 && options.empty) lines.push(...wrapText(options.empty, options.width ?? DEFAULT_WIDTH));
  for (const row of rows) {
    const cells = columns.map((c, i) => {
      const cell = row[i] ?? "";
      if (c.fit === "middle") return [shortenMiddle(cell, widths[i])];
      if (c.fit === "wrap") return wrapText(cell, widths[i]);
      return [cell];
    });
    const height = Math.max(...cells.map((c) => c.length));
    for (let k = 0; k < height; k++) lines.push(line(cells.map((c) => c[k] ?? "")));
  }
  return lines;
}

/**
 * Label/value lines (`label  value`), labels padded to the longest. A value too long for
 * `width` (default DEFAULT_WIDTH; `Infinity`: never) is wrapped onto lines indented under the
 * values, never shortened: a person may copy it (join the lines, or use --json).
 *
 * @example
 * renderFields([["issuer", "https://…"], ["kid", "abc"]]) // ["issuer  https://…", "kid     abc"]
 */
export function renderFields(fields: Array<[string, string]>, options: { width?: number; gap?: number } = {}): string[] {
  const labelWidth = Math.max(0, ...fields.map(([label]) => displayWidth(label)));
  const indent = labelWidth + (options.gap ?? 2);
  const valueWidth = Math.max(20, (options.width ?? DEFAULT_WIDTH) - indent);
  return fields.flatMap(([label, value]) =>
    wrapText(value, valueWidth).map((part, i) => `${pad(i === 0 ? label : "", indent, "left")}${part}`.trimEnd())
  );
}

/** Array items per piece of jsonPieces: a few hundred records at a time. */
const JSON_ITEMS_PER_PIECE = 256;
/** How `JSON.stringify({ key: [items] }, null, 2)` ends after its last item. */
const GROUP_CLOSE = "\n  ]\n}";

/**
 * The text of `JSON.stringify(value, null, 2)` for an object, in pieces of whole lines (joined
 * with newlines they are exactly that text), with the arrays under the keys in `stream` given an
 * item group at a time. A report of 100,000 events as one string took more memory than the whole
 * run before it (the string, then its UTF-8 copy for stdout); written piece by piece through a
 * line writer it never exists at once. Pure.
 *
 * @example
 * for (const piece of jsonPieces({ ok: true, events }, { stream: ["events"] })) out(piece);
 */
export function* jsonPieces(value: Record<string, unknown>, options: { stream: string[]; itemsPerPiece?: number }): Generator<string> {
  const per = Math.max(1, options.itemsPerPiece ?? JSON_ITEMS_PER_PIECE);
  // JSON.stringify leaves out members it cannot write.
  const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== "function" && typeof v !== "symbol");
  if (entries.length === 0) {
    yield "{}";
    return;
  }
  yield "{";
  for (let e = 0; e < entries.length; e++) {
    const [key, v] = entries[e];
    const comma = e < entries.length - 1 ? "," : "";
    if (!options.stream.includes(key) || !Array.isArray(v) || v.length === 0) {
      yield `  ${JSON.stringify(key)}: ${JSON.stringify(v, null, 2).replaceAll("\n", "\n  ")}${comma}`;
      continue;
    }
    yield `  ${JSON.stringify(key)}: [`;
    for (let i = 0; i < v.length; i += per) {
      // One stringify per group, nested as deep as the items sit in the whole text, then the
      // group's lines cut out of it: no string per item, no re-indenting copy (a 400-customer
      // run allocated a sixth of all its memory, 50 of 302 MB, in those copies).
      const text = JSON.stringify({ [key]: v.slice(i, i + per) }, null, 2);
      const items = text.slice(text.indexOf("[\n") + 2, text.length - GROUP_CLOSE.length);
      yield i + per < v.length ? `${items},` : items;
    }
    yield `  ]${comma}`;
  }
  yield "}";
}
