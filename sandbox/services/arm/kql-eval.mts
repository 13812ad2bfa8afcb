// Runs a KQL query parsed by kql.mts over Resource Graph rows: the columns each stage may use
// (an unknown column is a KqlError), expression evaluation with KQL's string and number
// conversions, and the functions of the subset.
import { KqlError, type Expr, type Query, type Row } from "./kql.mts";

/** KQL's tostring(): null → "", dynamic values as JSON. */
function kqlString(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

function num(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return null;
}

function columnsIn(e: Expr, out: Set<string>): Set<string> {
  switch (e.k) {
    case "col": out.add(e.name); break;
    case "member": columnsIn(e.obj, out); break;
    case "call": for (const a of e.args) columnsIn(a.e, out); break;
    case "bin": columnsIn(e.l, out); columnsIn(e.r, out); break;
    case "neg": columnsIn(e.e, out); break;
  }
  return out;
}

/** Named arguments: each function's parameter names, in order. */
const PARAMS: Record<string, string[][]> = {
  substring: [["source"], ["startingindex", "start"], ["length"]],
  indexof: [["string", "source"], ["match", "lookup"], ["start", "start_index"], ["length"], ["occurrence"]],
};
const ARITY: Record<string, [number, number]> = {
  substring: [2, 3], indexof: [2, 5], strcat: [1, 64], parse_json: [1, 1], todynamic: [1, 1], tostring: [1, 1],
  tolower: [1, 1], toupper: [1, 1], isempty: [1, 1], isnotempty: [1, 1],
};

function bindArgs(fn: string, args: Array<{ name?: string; e: Expr }>): Expr[] {
  const [min, max] = ARITY[fn];
  const params = PARAMS[fn];
  const out: Expr[] = [];
  let positional = 0;
  for (const a of args) {
    if (a.name === undefined) {
      out[positional++] = a.e;
      continue;
    }
    const idx = params?.findIndex((names) => names.includes(a.name!.toLowerCase())) ?? -1;
    if (idx < 0) throw new KqlError("ParserFailure", `The function '${fn}' has no parameter named '${a.name}'.`);
    out[idx] = a.e;
    positional = idx + 1;
  }
  const n = out.length;
  if (n < min || n > max || out.slice(0, min).some((x) => x === undefined)) {
    throw new KqlError("ParserFailure", `The function '${fn}' expects ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}.`);
  }
  return out;
}

function evalExpr(e: Expr, row: Row): unknown {
  switch (e.k) {
    case "lit": return e.v;
    case "col": return row[e.name] ?? null;
    case "neg": {
      const v = num(evalExpr(e.e, row));
      return v === null ? null : -v;
    }
    case "member": {
      const o = evalExpr(e.obj, row);
      if (o === null || typeof o !== "object") return null;
      if (typeof e.key === "number") return Array.isArray(o) ? o[e.key] ?? null : null;
      // Property names in dynamic values match case-sensitively in KQL.
      return (o as Record<string, unknown>)[e.key] ?? null;
    }
    case "bin": return evalBinary(e.op, e.l, e.r, row);
    case "call": return evalCall(e.fn, bindArgs(e.fn, e.args), row);
  }
}

function evalBinary(op: string, le: Expr, re: Expr, row: Row): unknown {
  if (op === "and") return evalExpr(le, row) === true && evalExpr(re, row) === true;
  if (op === "or") return evalExpr(le, row) === true || evalExpr(re, row) === true;
  const l = evalExpr(le, row);
  const r = evalExpr(re, row);
  switch (op) {
    case "+":
    case "-": {
      const a = num(l);
      const b = num(r);
      if (a === null || b === null) return null;
      return op === "+" ? a + b : a - b;
    }
    case "=~": return l !== null && r !== null && kqlString(l).toLowerCase() === kqlString(r).toLowerCase();
    case "!~": return l !== null && r !== null && kqlString(l).toLowerCase() !== kqlString(r).toLowerCase();
    case "==":
    case "!=": {
      if (l === null || r === null) return false;
      const eq = typeof l === "number" && typeof r === "number" ? l === r : kqlString(l) === kqlString(r);
      return op === "==" ? eq : !eq;
    }
    default: {
      if (l === null || r === null) return false;
      const a = num(l);
      const b = num(r);
      const [x, y]: [number | string, number | string] = a !== null && b !== null ? [a, b] : [kqlString(l), kqlString(r)];
      return op === "<" ? x < y : op === "<=" ? x <= y : op === ">" ? x > y : x >= y;
    }
  }
}

function evalCall(fn: string, args: Expr[], row: Row): unknown {
  const v = (i: number) => (args[i] === undefined ? undefined : evalExpr(args[i], row));
  switch (fn) {
    case "tostring": return kqlString(v(0));
    case "tolower": return kqlString(v(0)).toLowerCase();
    case "toupper": return kqlString(v(0)).toUpperCase();
    case "isempty": return kqlString(v(0)) === "";
    case "isnotempty": return kqlString(v(0)) !== "";
    case "strcat": return args.map((_, i) => kqlString(v(i))).join("");
    case "parse_json":
    case "todynamic": {
      const x = v(0);
      if (typeof x !== "string") return x ?? null;
      try {
        return JSON.parse(x);
      } catch {
        return null;
      }
    }
    case "substring": {
      const s = kqlString(v(0));
      const start = num(v(1));
      if (start === null) return "";
      const from = Math.max(0, Math.trunc(start));
      const lenArg = args[2] === undefined ? undefined : num(v(2));
      if (lenArg === null) return "";
      return lenArg === undefined ? s.slice(from) : s.slice(from, from + Math.max(0, Math.trunc(lenArg)));
    }
    case "indexof": {
      const s = kqlString(v(0));
      const lookup = kqlString(v(1));
      let start = args[2] === undefined ? 0 : num(v(2)) ?? 0;
      const length = args[3] === undefined ? -1 : num(v(3)) ?? -1;
      const occurrence = args[4] === undefined ? 1 : num(v(4)) ?? 1;
      if (start < 0) start = Math.max(0, s.length + start);
      if (start > s.length || occurrence < 1) return -1;
      const end = length < 0 ? s.length : Math.min(s.length, start + length);
      let at = start - 1;
      for (let k = 0; k < occurrence; k++) {
        at = s.indexOf(lookup, at + 1);
        if (at < 0 || at + lookup.length > end) return -1;
      }
      return at;
    }
  }
  throw new KqlError("UnknownFunction", `The function '${fn}' is not supported.`);
}

/** Columns each stage leaves, checked before running: an unknown column is an error even on zero rows. */
function checkColumns(q: Query, baseColumns: string[]): string[] {
  let cols = [...baseColumns];
  const need = (e: Expr) => {
    for (const c of columnsIn(e, new Set())) {
      if (!cols.includes(c)) throw new KqlError("UnknownColumn", `Failed to resolve scalar expression named '${c}'.`);
    }
  };
  for (const s of q.stages) {
    if (s.k === "where") need(s.e);
    else if (s.k === "order") s.by.forEach((b) => need(b.e));
    else if (s.k === "extend") {
      for (const c of s.cols) {
        need(c.e);
        if (!cols.includes(c.name)) cols.push(c.name);
      }
    } else if (s.k === "project") {
      s.cols.forEach((c) => need(c.e));
      cols = s.cols.map((c) => c.name);
    }
  }
  return cols;
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return kqlString(a).localeCompare(kqlString(b));
}

/** Runs a parsed query over `rows` (the table's rows the caller may see); returns rows and columns. */
export function runKql(q: Query, rows: Row[], baseColumns: string[]): { columns: string[]; rows: Row[] } {
  const columns = checkColumns(q, baseColumns);
  let cur = rows.map((r) => ({ ...r }));
  for (const s of q.stages) {
    switch (s.k) {
      case "where":
        cur = cur.filter((r) => evalExpr(s.e, r) === true);
        break;
      case "extend":
        cur = cur.map((r) => {
          const out = { ...r };
          for (const c of s.cols) out[c.name] = evalExpr(c.e, out);
          return out;
        });
        break;
      case "project":
        cur = cur.map((r) => Object.fromEntries(s.cols.map((c) => [c.name, evalExpr(c.e, r)])));
        break;
      case "take":
        cur = cur.slice(0, s.n);
        break;
      case "order":
        cur = [...cur].sort((x, y) => {
          for (const b of s.by) {
            const d = compare(evalExpr(b.e, x), evalExpr(b.e, y));
            if (d !== 0) return b.desc ? -d : d;
          }
          return 0;
        });
        break;
    }
  }
  return { columns, rows: cur.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? null]))) };
}
