// Usage files for batch submission: CSV (header row) or JSON Lines, one event per row, each
// naming the customer (subscription, managed resource group), the dimension, the quantity and
// the hour (hours-ago, or an ISO effectiveStartTime). Read as a stream, line by line; every bad
// row is reported with its line number, and checkRows adds the rows config.json cannot bill
// (customer not connected, an hour given twice), so a run can refuse the whole file at once
// before anything is signed, sent or written.
import { createHash } from "node:crypto";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { checkQuantity, DEFAULT_MAX_QUANTITY, dimensionProblem, isGuid, isResourceGroupName, MAX_HOURS_AGO } from "../core/validate.mts";
import { customerIndexOf, type FoundCustomer } from "../state/customers.mts";
import { effectiveStartTime, HOUR_MS, isInUsageWindow, isoSeconds } from "./time.mts";
import { concatBytes } from "../core/bytes.mts";

/** One row as read from the file, checked and resolved to an absolute UTC time. */
export interface UsageRow {
  /** 1-based line number in the file (for messages); 0 for the event given on the command line. */
  line: number;
  subscriptionId: string;
  managedResourceGroup: string;
  dimension: string;
  quantity: number;
  /** ISO 8601 UTC without milliseconds, e.g. `2026-11-23T10:00:00Z`. */
  effectiveStartTime: string;
  /** The row's hours-ago when it gave one (effectiveStartTime is then that hour, counted back from the parse's `now`). */
  hoursAgo?: number;
}

export interface RowProblem {
  line: number;
  message: string;
}

export interface ParsedUsageFile {
  /** The good rows, stored compactly; iterate them, or `at(i)`, `toArray()`. */
  rows: UsageRows;
  problems: RowProblem[];
  /** SHA-256 (hex) of the input's bytes exactly as read: the same input has the same digest. */
  digest: string;
  /** The format the input was read as (given, or guessed from its first line). */
  format: UsageFileFormat;
}

export type UsageFileFormat = "csv" | "jsonl";

type Field = "subscriptionId" | "managedResourceGroup" | "dimension" | "quantity" | "hoursAgo" | "effectiveStartTime";

// Column names compare without case, `-`, `_` and spaces: `managed-resource-group`,
// `managedResourceGroup` and `Managed Resource Group` are the same column.
const ALIASES: Record<string, Field> = {
  subscription: "subscriptionId",
  subscriptionid: "subscriptionId",
  managedresourcegroup: "managedResourceGroup",
  mrg: "managedResourceGroup",
  dimension: "dimension",
  quantity: "quantity",
  hoursago: "hoursAgo",
  effectivestarttime: "effectiveStartTime",
};
const COLUMNS_HINT = "subscription, managed-resource-group, dimension, quantity, and hours-ago or effective-start-time";
const REQUIRED: Field[] = ["subscriptionId", "managedResourceGroup", "dimension", "quantity"];

const normaliseName = (name: string) => name.toLowerCase().replace(/[\s_-]/g, "");
// An absolute time: date, time to the minute at least, and a zone (Z or ±hh:mm).
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/i;

/** `csv` or `jsonl` from a file name; undefined when the extension says neither. */
export function formatOfPath(path: string): UsageFileFormat | undefined {
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  return undefined;
}

/** Guesses the format of text with no file name (stdin): JSON Lines when it starts with `{`. */
export function sniffFormat(text: string): UsageFileFormat {
  return text.trimStart().startsWith("{") ? "jsonl" : "csv";
}

/**
 * Splits one CSV line into fields (RFC 4180: commas, double quotes, "" inside quotes).
 * Returns undefined for an unterminated quote.
 */
export function splitCsvLine(line: string): string[] | undefined {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        if (i >= line.length) return undefined;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += line[i++];
      }
      fields.push(value);
      while (line[i] === " ") i++;
      if (i >= line.length) return fields;
      if (line[i] !== ",") return undefined;
      i++;
    } else {
      const comma = line.indexOf(",", i);
      if (comma < 0) {
        fields.push(line.slice(i));
        return fields;
      }
      fields.push(line.slice(i, comma));
      i = comma + 1;
    }
  }
}

/**
 * Usage rows stored column by column: line numbers, quantities and hours-ago in typed arrays,
 * and each distinct subscription, resource group, dimension and time once, by number. A
 * million rows take about 30 MB here; as a million objects they would hold several times that
 * in a V8 process (the objects, and the young generation their survival makes V8 grow).
 * Iterating, `at(i)` and `toArray()` build plain UsageRow objects on the way out.
 *
 * @example
 * const rows = UsageRows.from([{ line: 2, subscriptionId, managedResourceGroup, dimension: "cpu", quantity: 5, effectiveStartTime, hoursAgo: 1 }]);
 * rows.at(0).hoursAgo // 1
 */
export class UsageRows implements Iterable<UsageRow> {
  #length = 0;
  #lines = new Int32Array(16);
  #subscriptions = new Int32Array(16);
  #groups = new Int32Array(16);
  #dimensions = new Int32Array(16);
  #times = new Int32Array(16);
  #quantities = new Float64Array(16);
  /** -1: the row gave an absolute time. */
  #hoursAgo = new Int8Array(16);
  #strings: string[] = [];
  #numbers = new Map<string, number>();

  /** Rows from any list of UsageRow objects. */
  static from(rows: Iterable<UsageRow>): UsageRows {
    const out = new UsageRows();
    for (const row of rows) out.push(row);
    return out;
  }

  get length(): number {
    return this.#length;
  }

  /** Appends a row (its values are copied). */
  push(row: UsageRow): void {
    if (!(Number.isInteger(row.line) && row.line >= 0 && row.line < 2 ** 31)) throw new RangeError(`Cannot store a row: line ${row.line} is not an integer from 0 to 2^31-1`);
    if (row.hoursAgo !== undefined && !(Number.isInteger(row.hoursAgo) && row.hoursAgo >= 0 && row.hoursAgo <= 127)) {
      throw new RangeError(`Cannot store a row: hoursAgo ${row.hoursAgo} is not an integer from 0 to 127`);
    }
    if (this.#length === this.#lines.length) this.#grow();
    const i = this.#length++;
    this.#lines[i] = row.line;
    this.#subscriptions[i] = this.#number(row.subscriptionId);
    this.#groups[i] = this.#number(row.managedResourceGroup);
    this.#dimensions[i] = this.#number(row.dimension);
    this.#times[i] = this.#number(row.effectiveStartTime);
    this.#quantities[i] = row.quantity;
    this.#hoursAgo[i] = row.hoursAgo ?? -1;
  }

  /** Row `index` (0-based) as a new UsageRow object; `hoursAgo` only on a relative row. */
  at(index: number): UsageRow {
    if (!(Number.isInteger(index) && index >= 0 && index < this.#length)) throw new RangeError(`Cannot read row ${index}: there are ${this.#length}`);
    const s = this.#strings, h = this.#hoursAgo[index];
    const row: UsageRow = {
      line: this.#lines[index],
      subscriptionId: s[this.#subscriptions[index]],
      managedResourceGroup: s[this.#groups[index]],
      dimension: s[this.#dimensions[index]],
      quantity: this.#quantities[index],
      effectiveStartTime: s[this.#times[index]],
    };
    if (h >= 0) row.hoursAgo = h;
    return row;
  }

  /** One field of row `index`, without building the row (hoursAgo: undefined on an absolute row). */
  fieldAt<K extends keyof UsageRow>(index: number, field: K): UsageRow[K] {
    if (!(Number.isInteger(index) && index >= 0 && index < this.#length)) throw new RangeError(`Cannot read row ${index}: there are ${this.#length}`);
    const s = this.#strings;
    switch (field) {
      case "line": return this.#lines[index] as UsageRow[K];
      case "subscriptionId": return s[this.#subscriptions[index]] as UsageRow[K];
      case "managedResourceGroup": return s[this.#groups[index]] as UsageRow[K];
      case "dimension": return s[this.#dimensions[index]] as UsageRow[K];
      case "quantity": return this.#quantities[index] as UsageRow[K];
      case "effectiveStartTime": return s[this.#times[index]] as UsageRow[K];
      case "hoursAgo": return (this.#hoursAgo[index] >= 0 ? this.#hoursAgo[index] : undefined) as UsageRow[K];
    }
    throw new RangeError(`Cannot read field ${String(field)}: a UsageRow has no such field`);
  }

  *[Symbol.iterator](): Iterator<UsageRow> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }

  toArray(): UsageRow[] {
    return Array.from(this);
  }

  toJSON(): UsageRow[] {
    return this.toArray();
  }

  /** The rows `keep` says yes to, in order, as new UsageRows. */
  filter(keep: (row: UsageRow, index: number) => boolean): UsageRows {
    const out = new UsageRows();
    for (let i = 0; i < this.#length; i++) {
      const row = this.at(i);
      if (keep(row, i)) out.push(row);
    }
    return out;
  }

  /**
   * The same rows with every relative row (one that gave hours-ago) resolved against `now`
   * instead of the instant it was read at: for sending an input again as an earlier run
   * resolved it. Rows that gave an absolute time keep it.
   */
  resolvedAgainst(now: number): UsageRows {
    const out = new UsageRows();
    for (let i = 0; i < this.#length; i++) {
      const row = this.at(i);
      if (row.hoursAgo !== undefined) row.effectiveStartTime = effectiveStartTime({ hoursAgo: row.hoursAgo, now });
      out.push(row);
    }
    return out;
  }

  #number(value: string): number {
    let n = this.#numbers.get(value);
    if (n === undefined) {
      // A fresh flat copy: a substring may hold on to its whole line, and through it to the
      // chunk of the file it was read from.
      const kept = JSON.parse(JSON.stringify(value)) as string;
      n = this.#strings.push(kept) - 1;
      this.#numbers.set(kept, n);
    }
    return n;
  }

  #grow() {
    const twice = <T extends Int32Array | Float64Array | Int8Array>(a: T): T => {
      const b = new (a.constructor as new (length: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.#lines = twice(this.#lines);
    this.#subscriptions = twice(this.#subscriptions);
    this.#groups = twice(this.#groups);
    this.#dimensions = twice(this.#dimensions);
    this.#times = twice(this.#times);
    this.#quantities = twice(this.#quantities);
    this.#hoursAgo = twice(this.#hoursAgo);
  }
}

/** Everything one row check needs besides the values; shared by every row of a file. */
interface _RowContext {
  now: number;
  maxQuantity: number;
  /** Past the window is not an input error (raw records: late usage is reported, not refused). */
  acceptPast: boolean;
  /** effectiveStartTime of hours-ago `h`, computed once per file. */
  hourStart(h: number): string;
}

function _rowContext(options: { now: number; maxQuantity?: number; acceptPast?: boolean }): _RowContext {
  const hours = new Map<number, string>();
  return {
    now: options.now,
    maxQuantity: options.maxQuantity ?? DEFAULT_MAX_QUANTITY,
    acceptPast: options.acceptPast === true,
    hourStart(h) {
      let t = hours.get(h);
      if (t === undefined) hours.set(h, t = effectiveStartTime({ hoursAgo: h, now: options.now }));
      return t;
    },
  };
}

/**
 * Checks one row's values (strings or numbers) and resolves its time. Pure.
 * `maxQuantity` is the ceiling of one event's quantity (default 1,000,000).
 */
export function checkRow(
  values: Partial<Record<Field, unknown>>,
  options: { line: number; now: number; maxQuantity?: number },
): { row?: UsageRow; problems: string[] } {
  return _checkRow(values, options.line, _rowContext(options));
}

function _checkRow(values: Partial<Record<Field, unknown>>, line: number, ctx: _RowContext): { row?: UsageRow; problems: string[] } {
  const problems: string[] = [];
  const text = (v: unknown) => (typeof v === "number" ? String(v) : typeof v === "string" ? v.trim() : "");
  const present = (v: unknown) => v !== undefined && v !== null && text(v) !== "";

  for (const field of REQUIRED) if (!present(values[field])) problems.push(`${field} is missing`);
  const subscriptionId = text(values.subscriptionId);
  if (present(values.subscriptionId) && !isGuid(subscriptionId)) problems.push(`subscription ${JSON.stringify(subscriptionId)} is not a GUID`);
  const managedResourceGroup = text(values.managedResourceGroup);
  if (present(values.managedResourceGroup) && !isResourceGroupName(managedResourceGroup)) {
    problems.push(`managed resource group ${JSON.stringify(managedResourceGroup)} is not a valid resource group name`);
  }
  const dimension = text(values.dimension);
  const dimensionWrong = present(values.dimension) ? dimensionProblem(dimension) : undefined;
  if (dimensionWrong) problems.push(`dimension ${JSON.stringify(dimension)}: ${dimensionWrong}`);
  let quantity = NaN;
  if (present(values.quantity)) {
    const raw = typeof values.quantity === "number" ? values.quantity : text(values.quantity);
    const checked = checkQuantity(raw, { maxQuantity: ctx.maxQuantity });
    if (checked.problem !== undefined) problems.push(`quantity ${JSON.stringify(text(values.quantity))}: ${checked.problem}`);
    else quantity = checked.quantity;
  }

  let time: string | undefined;
  let hoursAgo: number | undefined;
  const hasHours = present(values.hoursAgo);
  const hasTime = present(values.effectiveStartTime);
  if (hasHours && hasTime) problems.push("give either hours-ago or effective-start-time, not both");
  else if (!hasHours && !hasTime) problems.push("hours-ago or effective-start-time is missing");
  else if (hasHours) {
    const h = text(values.hoursAgo);
    const n = /^\d{1,2}$/.test(h) ? Number(h) : NaN;
    if (!(n >= 0 && n <= MAX_HOURS_AGO)) problems.push(`hours-ago ${JSON.stringify(h)} is not an integer from 0 to ${MAX_HOURS_AGO}`);
    else {
      hoursAgo = n;
      time = ctx.hourStart(n);
    }
  } else {
    const t = text(values.effectiveStartTime);
    const ms = ISO_RE.test(t) ? Date.parse(t) : NaN;
    if (Number.isNaN(ms)) {
      problems.push(`effective-start-time ${JSON.stringify(t)} is not an ISO 8601 time with a zone, e.g. 2024-05-01T13:00:00Z`);
    } else if (!isInUsageWindow(ms, ctx.now) && !(ctx.acceptPast && ms <= ctx.now)) {
      // The API's window (docs/azure-behaviour.md §1.5): 0 <= now - t < 24 h; anything else comes back Expired.
      problems.push(`effective-start-time ${t} is outside the API's window (the last 24 hours, not in the future)`);
    } else {
      time = _isCanonical(t) ? t : isoSeconds(ms);
    }
  }
  if (problems.length > 0 || time === undefined) return { problems };
  const row: UsageRow = { line, subscriptionId, managedResourceGroup, dimension, quantity, effectiveStartTime: time };
  if (hoursAgo !== undefined) row.hoursAgo = hoursAgo;
  return { row, problems };
}

/**
 * Whether a time Date.parse accepted is already as isoSeconds writes it (`YYYY-MM-DDTHH:MM:SSZ`,
 * a day that every month has, an hour below 24), so a row keeps the text instead of a new string:
 * a file of raw records has a different time on nearly every row.
 */
function _isCanonical(t: string): boolean {
  if (t.length !== 20 || t[10] !== "T" || t[19] !== "Z" || t[13] !== ":" || t[16] !== ":") return false;
  const day = (t.charCodeAt(8) - 48) * 10 + t.charCodeAt(9) - 48, hour = (t.charCodeAt(11) - 48) * 10 + t.charCodeAt(12) - 48;
  return day >= 1 && day <= 28 && hour <= 23;
}

/** Maps a header or JSON key to a field; undefined for an unknown column. */
function fieldOf(name: string): Field | undefined {
  return ALIASES[normaliseName(name)];
}

const NOT_UTF8 = "not valid UTF-8 text (save the file as UTF-8; in Excel: CSV UTF-8)";

/** Reads decoded lines one at a time into rows and problems; knows CSV headers and JSON Lines. */
class _UsageParser {
  readonly rows = new UsageRows();
  readonly #sink: { push(row: UsageRow): void };
  readonly problems: RowProblem[] = [];
  format: UsageFileFormat | undefined;
  #ctx: _RowContext;
  /** The CSV header's field per column, once read. */
  #fields: Array<Field | undefined> | undefined;
  /** After a bad CSV header the rows cannot be read. */
  #stopped = false;

  constructor(options: ParseOptions & { now: number }) {
    this.format = options.format;
    this.#ctx = _rowContext(options);
    this.#sink = options.sink ?? this.rows;
  }

  /** One line, without its `\n`; undefined when its bytes are not UTF-8. `n` is 1-based. */
  line(raw: string | undefined, n: number): void {
    if (this.#stopped) return;
    let text = raw;
    if (text !== undefined) {
      if (n === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.endsWith("\r")) text = text.slice(0, -1);
      if (text.trim() === "") return;
    }
    // No file name (stdin): the first line that says anything decides.
    this.format ??= text === undefined ? "csv" : sniffFormat(text);
    if (this.format === "csv" && this.#fields === undefined) {
      if (text === undefined) {
        this.problems.push({ line: n, message: `bad header: ${NOT_UTF8}` });
        this.#stopped = true;
      } else this.#header(text, n);
      return;
    }
    if (text === undefined) this.problems.push({ line: n, message: NOT_UTF8 });
    else if (this.format === "jsonl") this.#jsonLine(text, n);
    else this.#csvLine(text, n);
  }

  /** A problem found below the lines (the bytes as a whole). */
  refuse(line: number, message: string): void {
    this.problems.push({ line, message });
    this.#stopped = true;
  }

  end(): void {
    this.format ??= "csv";
    if (this.format === "csv" && this.#fields === undefined && !this.#stopped) {
      this.problems.push({ line: 1, message: `the file is empty; expected a header row with ${COLUMNS_HINT}` });
    }
  }

  #add(n: number, values: Partial<Record<Field, unknown>>) {
    const checked = _checkRow(values, n, this.#ctx);
    if (checked.row) this.#sink.push(checked.row);
    else this.problems.push({ line: n, message: checked.problems.join("; ") });
  }

  #header(text: string, n: number) {
    const header = splitCsvLine(text.trim()) ?? [];
    const fields = header.map((h) => fieldOf(h.trim()));
    const unknown = header.filter((_, i) => fields[i] === undefined);
    const missing = REQUIRED.filter((f) => !fields.includes(f));
    const duplicated = fields.filter((f, i) => f !== undefined && fields.indexOf(f) !== i);
    const noTime = !fields.includes("hoursAgo") && !fields.includes("effectiveStartTime");
    if (unknown.length > 0 || missing.length > 0 || duplicated.length > 0 || noTime) {
      const parts = [
        unknown.length > 0 ? `unknown column ${unknown.map((h) => JSON.stringify(h.trim())).join(", ")}` : "",
        missing.length > 0 ? `missing column ${missing.join(", ")}` : "",
        duplicated.length > 0 ? `column ${duplicated.join(", ")} given twice` : "",
        noTime ? "missing column hours-ago or effective-start-time" : "",
      ].filter(Boolean);
      this.refuse(n, `bad header: ${parts.join("; ")} (expected ${COLUMNS_HINT})`);
      return;
    }
    this.#fields = fields;
  }

  #csvLine(text: string, n: number) {
    const fields = this.#fields!;
    const cells = splitCsvLine(text);
    if (!cells) {
      this.problems.push({ line: n, message: "unterminated quote" });
      return;
    }
    if (cells.length !== fields.length) {
      this.problems.push({ line: n, message: `expected ${fields.length} columns, got ${cells.length}` });
      return;
    }
    const values: Partial<Record<Field, unknown>> = {};
    for (let j = 0; j < cells.length; j++) values[fields[j]!] = cells[j];
    this.#add(n, values);
  }

  #jsonLine(text: string, n: number) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.problems.push({ line: n, message: "not a JSON object" });
      return;
    }
    const values: Partial<Record<Field, unknown>> = {};
    const unknown: string[] = [];
    const twice: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      const f = fieldOf(k);
      if (!f) unknown.push(k);
      else if (f in values) twice.push(k);
      else values[f] = v;
    }
    if (unknown.length > 0) this.problems.push({ line: n, message: `unknown key ${unknown.map((k) => JSON.stringify(k)).join(", ")} (expected ${COLUMNS_HINT})` });
    else if (twice.length > 0) this.problems.push({ line: n, message: `key ${twice.map((k) => JSON.stringify(k)).join(", ")} names a field given already` });
    else this.#add(n, values);
  }
}

const NEWLINE = 0x0a;

/**
 * Bytes in, lines out: hashes every byte as read, cuts at `\n` bytes (never inside a UTF-8
 * sequence), and decodes each line strictly, so a byte that is not UTF-8 is named by its line
 * instead of becoming U+FFFD. Holds one unfinished line between chunks, never the file.
 */
class _LineReader {
  readonly #parser: _UsageParser;
  readonly #hash = createHash("sha256");
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #carry: Uint8Array[] = [];
  #lines = 0;
  #start = true;
  #utf16 = false;

  constructor(parser: _UsageParser) {
    this.#parser = parser;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#hash.update(chunk);
    if (this.#start) {
      this.#start = false;
      // A UTF-16 byte order mark: every line would be "not UTF-8"; say what the file is instead.
      if (chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff))) {
        this.#utf16 = true;
        this.#parser.refuse(1, "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8");
      }
    }
    if (this.#utf16) return;
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      this.#carry.push(chunk);
      return;
    }
    this.#emit(concatBytes([...this.#carry, chunk.subarray(0, last)]));
    this.#carry = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
  }

  /** Feeds the last line (one without a final newline) and returns the SHA-256 of every byte. */
  end(): string {
    if (!this.#utf16 && this.#carry.length > 0) this.#emit(concatBytes(this.#carry));
    this.#carry = [];
    return this.#hash.digest("hex");
  }

  /** Whole lines joined by `\n`: decoded at once, or line by line when some line is not UTF-8. */
  #emit(bytes: Uint8Array) {
    let text: string | undefined;
    try {
      text = this.#decoder.decode(bytes);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      for (const line of text.split("\n")) this.#parser.line(line, ++this.#lines);
      return;
    }
    for (let from = 0; ;) {
      const nl = bytes.indexOf(NEWLINE, from);
      const part = bytes.subarray(from, nl < 0 ? bytes.length : nl);
      let line: string | undefined;
      try {
        line = this.#decoder.decode(part);
      } catch {
        line = undefined;
      }
      this.#parser.line(line, ++this.#lines);
      if (nl < 0) return;
      from = nl + 1;
    }
  }
}

export interface ParseOptions {
  /** csv or jsonl; left out, the first line that is not blank decides (`{` means JSON Lines). */
  format?: UsageFileFormat;
  /** The instant hours-ago counts back from and the API's window is judged at (default: the clock). */
  now?: number;
  /** Ceiling of one event's quantity (default 1,000,000): above it, a row is refused. */
  maxQuantity?: number;
  /** Where good rows go as they are read (an aggregator, say); the result's `rows` is then empty. */
  sink?: { push(row: UsageRow): void };
  /** Accept times past the API's window (not in the future): raw records, whose lateness the run reports. */
  acceptPast?: boolean;
}

/**
 * Reads a usage file from a stream of bytes (a file or stdin), line by line: memory follows
 * the rows, not the file. Every problem (bad header, unknown column, bad value, malformed or
 * non-UTF-8 line) is reported with its line number; good rows are returned either way, with
 * the SHA-256 (hex) of the bytes exactly as read and the format used.
 *
 * @example
 * const parsed = await readUsageFile(createReadStream("usage.csv"), { format: "csv" });
 */
export async function readUsageFile(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: ParseOptions = {}): Promise<ParsedUsageFile> {
  const parser = new _UsageParser({ ...options, now: options.now ?? Date.now() });
  const reader = new _LineReader(parser);
  for await (const chunk of chunks) reader.push(chunk);
  return _result(parser, reader);
}

/**
 * Parses a whole usage file held in memory (text or bytes), as readUsageFile does a stream.
 * Pure apart from `now`.
 *
 * @example
 * parseUsageFile("subscription,managed-resource-group,dimension,quantity,hours-ago\n…", { format: "csv" })
 */
export function parseUsageFile(input: string | Uint8Array, options: ParseOptions = {}): ParsedUsageFile {
  const parser = new _UsageParser({ ...options, now: options.now ?? Date.now() });
  const reader = new _LineReader(parser);
  reader.push(typeof input === "string" ? new TextEncoder().encode(input) : input);
  return _result(parser, reader);
}

function _result(parser: _UsageParser, reader: _LineReader): ParsedUsageFile {
  const digest = reader.end();
  parser.end();
  return { rows: parser.rows, problems: parser.problems, digest, format: parser.format! };
}

/**
 * Checks parsed rows against config.json, all rows in one pass: a row whose customer is not
 * connected (or has no billing ids), and a row for the same customer, dimension and UTC hour
 * as an earlier row (the API keeps one event per hour: the second would come back Duplicate),
 * is a problem with its line. Returns the rows that passed (the same UsageRows when all did)
 * and the problems. Pure.
 *
 * @example
 * const { rows, problems } = checkRows(parsed.rows, config);
 */
export function checkRows(input: UsageRows | UsageRow[], config: MeteringConfig): { rows: UsageRows; problems: RowProblem[] } {
  const rows = input instanceof UsageRows ? input : UsageRows.from(input);
  type Known = { connected: boolean; dimensions: Map<string, number> };
  // The run's one map of customers (any case: subscription ids and resource group names are
  // case-insensitive in Azure), and what this check learns per customer found.
  const index = customerIndexOf(config);
  const knownOf = new Map<FoundCustomer, Known>();
  // Rows repeat a few spellings of each customer and a few times: look each up once.
  const seen = new Map<string, Map<string, Known | null>>();
  const hourOfTime = new Map<string, number>();
  const firstLines = new _FirstLines(rows.length);
  let pairs = 0;
  const refused = new Uint8Array(rows.length);
  const problems: RowProblem[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows.at(i);
    refused[i] = 1;
    let bySpelling = seen.get(row.subscriptionId);
    if (!bySpelling) seen.set(row.subscriptionId, bySpelling = new Map());
    let known = bySpelling.get(row.managedResourceGroup);
    if (known === undefined) {
      const found = index.find(row);
      if (found && !knownOf.has(found)) {
        const billing = (found.customer as Partial<CustomerConfig> | undefined)?.billing;
        knownOf.set(found, { connected: typeof billing?.resourceId === "string" && billing.resourceId !== "", dimensions: new Map() });
      }
      known = found ? knownOf.get(found)! : null;
      bySpelling.set(row.managedResourceGroup, known);
    }
    if (!known) {
      problems.push({ line: row.line, message: `customer ${row.subscriptionId}/${row.managedResourceGroup} is not connected (run 1-connect-customer ${row.subscriptionId} ${row.managedResourceGroup} first)` });
      continue;
    }
    if (!known.connected) {
      problems.push({ line: row.line, message: `customer ${row.subscriptionId}/${row.managedResourceGroup} has no billing ids in config.json (run 1-connect-customer ${row.subscriptionId} ${row.managedResourceGroup} --force)` });
      continue;
    }
    let hour = hourOfTime.get(row.effectiveStartTime);
    if (hour === undefined) hourOfTime.set(row.effectiveStartTime, hour = Math.floor(Date.parse(row.effectiveStartTime) / HOUR_MS));
    let pair = known.dimensions.get(row.dimension);
    if (pair === undefined) known.dimensions.set(row.dimension, pair = pairs++);
    // (customer, dimension) pair and hour in one exact number: pair < 2^31, hour < 2^21 (until 2209).
    const first = firstLines.firstOr(pair * 2 ** 21 + hour, row.line);
    if (first !== undefined) {
      problems.push({ line: row.line, message: `same customer, dimension and hour as line ${first}: the API keeps one event per hour, so add the quantities into one row` });
      continue;
    }
    refused[i] = 0;
  }
  return { rows: problems.length === 0 ? rows : rows.filter((_, i) => refused[i] === 0), problems };
}

/**
 * The first line seen per numeric key, for up to `expected` keys, in an open-addressing table
 * of typed arrays: a million rows cost 24 MB here, where a Map entry each would cost several
 * times that (and V8 would grow its young generation for them).
 */
class _FirstLines {
  readonly #keys: Float64Array;
  readonly #lines: Int32Array;
  /** 32 - log2(capacity): the slot is the top bits of the mixed key (Fibonacci hashing). */
  readonly #shift: number;

  constructor(expected: number) {
    // At most half full: probes stay short.
    let bits = 4;
    while (2 ** bits < expected * 2) bits++;
    this.#shift = 32 - bits;
    this.#keys = new Float64Array(2 ** bits).fill(-1);
    this.#lines = new Int32Array(2 ** bits);
  }

  /** The line recorded for `key` (an integer from 0 to 2^53); else records `line` and returns undefined. */
  firstOr(key: number, line: number): number | undefined {
    const mask = this.#keys.length - 1;
    const hi = Math.floor(key / 4294967296);
    for (let i = Math.imul((key >>> 0) ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> this.#shift; ; i = (i + 1) & mask) {
      const k = this.#keys[i];
      if (k === key) return this.#lines[i];
      if (k === -1) {
        this.#keys[i] = key;
        this.#lines[i] = line;
        return undefined;
      }
    }
  }
}

/** SHA-256 (hex) of an input: what a run records so that a rerun of the same input is known as one. */
export function inputDigest(input: string | Uint8Array): string {
  return createHash("sha256").update(input).digest("hex");
}
