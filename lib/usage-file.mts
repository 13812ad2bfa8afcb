// Usage files for batch submission: CSV (header row) or JSON Lines, one event per row, each
// naming the customer (subscription, managed resource group), the dimension, the quantity and
// the hour (hours-ago, or an ISO effectiveStartTime). Parsing is pure and reports every bad
// row with its line number, so a run can refuse the whole file before sending anything.
import { checkQuantity, dimensionProblem, isGuid, isResourceGroupName, MAX_HOURS_AGO } from "./validate.mts";
import { effectiveStartTime } from "./metering.mts";

const HOUR_MS = 3_600_000;
export const USAGE_WINDOW_MS = 24 * HOUR_MS;

/** One row as read from the file, checked and resolved to an absolute UTC time. */
export interface UsageRow {
  /** 1-based line number in the file (for messages). */
  line: number;
  subscriptionId: string;
  managedResourceGroup: string;
  dimension: string;
  quantity: number;
  /** ISO 8601 UTC without milliseconds, e.g. `2026-11-23T10:00:00Z`. */
  effectiveStartTime: string;
}

export interface RowProblem {
  line: number;
  message: string;
}

export interface ParsedUsageFile {
  rows: UsageRow[];
  problems: RowProblem[];
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
 * Checks one row's values (strings or numbers) and resolves its time. Pure.
 * `maxQuantity` is the ceiling of one event's quantity (default 1,000,000).
 */
export function checkRow(
  values: Partial<Record<Field, unknown>>,
  options: { line: number; now: number; maxQuantity?: number },
): { row?: UsageRow; problems: string[] } {
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
    const checked = checkQuantity(raw, { maxQuantity: options.maxQuantity });
    if (checked.problem !== undefined) problems.push(`quantity ${JSON.stringify(text(values.quantity))}: ${checked.problem}`);
    else quantity = checked.quantity;
  }

  let time: string | undefined;
  const hasHours = present(values.hoursAgo);
  const hasTime = present(values.effectiveStartTime);
  if (hasHours && hasTime) problems.push("give either hours-ago or effective-start-time, not both");
  else if (!hasHours && !hasTime) problems.push("hours-ago or effective-start-time is missing");
  else if (hasHours) {
    const h = text(values.hoursAgo);
    const n = /^\d{1,2}$/.test(h) ? Number(h) : NaN;
    if (!(n >= 0 && n <= MAX_HOURS_AGO)) problems.push(`hours-ago ${JSON.stringify(h)} is not an integer from 0 to ${MAX_HOURS_AGO}`);
    else time = effectiveStartTime({ hoursAgo: n, now: options.now });
  } else {
    const t = text(values.effectiveStartTime);
    const ms = ISO_RE.test(t) ? Date.parse(t) : NaN;
    if (Number.isNaN(ms)) {
      problems.push(`effective-start-time ${JSON.stringify(t)} is not an ISO 8601 time with a zone, e.g. 2024-05-01T13:00:00Z`);
    } else if (ms > options.now || options.now - ms >= USAGE_WINDOW_MS) {
      // The API's window (facts §1.5): 0 <= now - t < 24 h; anything else comes back Expired.
      problems.push(`effective-start-time ${t} is outside the API's window (the last 24 hours, not in the future)`);
    } else {
      time = new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
    }
  }
  if (problems.length > 0 || time === undefined) return { problems };
  return { row: { line: options.line, subscriptionId, managedResourceGroup, dimension, quantity, effectiveStartTime: time }, problems };
}

/** Maps a header or JSON key to a field; undefined for an unknown column. */
function fieldOf(name: string): Field | undefined {
  return ALIASES[normaliseName(name)];
}

/**
 * Parses a usage file. Every problem (bad header, unknown column, bad value, malformed line)
 * is reported with its line number; good rows are returned either way. Pure apart from `now`.
 *
 * @example
 * parseUsageFile("subscription,managed-resource-group,dimension,quantity,hours-ago\n…", { format: "csv" })
 */
export function parseUsageFile(text: string, options: { format: UsageFileFormat; now?: number; maxQuantity?: number }): ParsedUsageFile {
  const now = options.now ?? Date.now();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const rows: UsageRow[] = [];
  const problems: RowProblem[] = [];
  const add = (line: number, values: Partial<Record<Field, unknown>>) => {
    const checked = checkRow(values, { line, now, maxQuantity: options.maxQuantity });
    if (checked.row) rows.push(checked.row);
    else problems.push({ line, message: checked.problems.join("; ") });
  };

  if (options.format === "jsonl") {
    lines.forEach((raw, i) => {
      if (raw.trim() === "") return;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        problems.push({ line: i + 1, message: "not a JSON object" });
        return;
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problems.push({ line: i + 1, message: "not a JSON object" });
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
      if (unknown.length > 0) problems.push({ line: i + 1, message: `unknown key ${unknown.map((k) => JSON.stringify(k)).join(", ")} (expected ${COLUMNS_HINT})` });
      else if (twice.length > 0) problems.push({ line: i + 1, message: `key ${twice.map((k) => JSON.stringify(k)).join(", ")} names a field given already` });
      else add(i + 1, values);
    });
    return { rows, problems };
  }

  const headerIndex = lines.findIndex((l) => l.trim() !== "");
  if (headerIndex < 0) return { rows, problems: [{ line: 1, message: `the file is empty; expected a header row with ${COLUMNS_HINT}` }] };
  const header = splitCsvLine(lines[headerIndex].trim()) ?? [];
  const fields = header.map((h) => fieldOf(h.trim()));
  const unknown = header.filter((_, i) => fields[i] === undefined);
  const missing = REQUIRED.filter((f) => !fields.includes(f));
  const duplicated = fields.filter((f, i) => f !== undefined && fields.indexOf(f) !== i);
  if (unknown.length > 0 || missing.length > 0 || duplicated.length > 0 || (!fields.includes("hoursAgo") && !fields.includes("effectiveStartTime"))) {
    const parts = [
      unknown.length > 0 ? `unknown column ${unknown.map((h) => JSON.stringify(h.trim())).join(", ")}` : "",
      missing.length > 0 ? `missing column ${missing.join(", ")}` : "",
      duplicated.length > 0 ? `column ${duplicated.join(", ")} given twice` : "",
      !fields.includes("hoursAgo") && !fields.includes("effectiveStartTime") ? "missing column hours-ago or effective-start-time" : "",
    ].filter(Boolean);
    return { rows, problems: [{ line: headerIndex + 1, message: `bad header: ${parts.join("; ")} (expected ${COLUMNS_HINT})` }] };
  }
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "") continue;
    const cells = splitCsvLine(raw);
    if (!cells) {
      problems.push({ line: i + 1, message: "unterminated quote" });
      continue;
    }
    if (cells.length !== fields.length) {
      problems.push({ line: i + 1, message: `expected ${fields.length} columns, got ${cells.length}` });
      continue;
    }
    const values: Partial<Record<Field, unknown>> = {};
    cells.forEach((c, j) => (values[fields[j]!] = c));
    add(i + 1, values);
  }
  return { rows, problems };
}

/** The start of the UTC hour that holds `time`: the hour bucket of the API's duplicate rule. */
export function hourOf(time: string): string {
  const ms = Math.floor(Date.parse(time) / HOUR_MS) * HOUR_MS;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
