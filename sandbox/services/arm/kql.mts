// The subset of KQL (Kusto Query Language) Resource Graph queries in this project use, and
// nothing silently: every operator, function or column outside the subset is a KqlError that
// names it. Supported:
//   <table> | where <expr> | extend a = <expr>, … | project a, b = <expr>, … | take n | limit n
//   | order by <expr> [asc|desc], … (sort by)
// Expressions: literals ("…", '…', numbers, true, false, null), columns, member access (a.b,
// a['b'], a[0]), + - on numbers, == != =~ !~ < <= > >=, and, or, parentheses, and the functions
// substring, indexof (named arguments too), strcat, parse_json/todynamic, tostring, tolower,
// toupper, isempty, isnotempty.

export class KqlError extends Error {
  /** Resource Graph's detail code. */
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "KqlError";
    this.code = code;
  }
}

type Row = Record<string, unknown>;

// ---------------------------------------------------------------- tokens

interface Token {
  k: "id" | "str" | "num" | "op" | "end";
  v: string;
  pos: number;
}

const OPERATORS = ["==", "!=", "=~", "!~", "<=", ">=", "|", "(", ")", ",", ".", "[", "]", "=", "<", ">", "+", "-", "*", "/", "%"];

function tokenize(q: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const ch = q[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (q.startsWith("//", i)) {
      while (i < q.length && q[i] !== "\n") i++;
      continue;
    }
    const start = i;
    if (ch === '"' || ch === "'") {
      let s = "";
      i++;
      while (i < q.length && q[i] !== ch) {
        if (q[i] === "\\") {
          const n = q[i + 1];
          s += n === "n" ? "\n" : n === "t" ? "\t" : n === "r" ? "\r" : n;
          i += 2;
        } else s += q[i++];
      }
      if (i >= q.length) throw new KqlError("ParserFailure", `Unterminated string literal at position ${start}.`);
      i++;
      out.push({ k: "str", v: s, pos: start });
      continue;
    }
    if (/[0-9]/.test(ch)) {
      while (i < q.length && /[0-9.]/.test(q[i])) i++;
      out.push({ k: "num", v: q.slice(start, i), pos: start });
      continue;
    }
    if (/[A-Za-z_$]/.test(ch)) {
      while (i < q.length && /[A-Za-z0-9_$-]/.test(q[i])) {
        // '-' belongs to a name only inside operator names like mv-expand or project-away.
        if (q[i] === "-" && !/^(mv|project|make|parse|top|evaluate|render|as)$/i.test(q.slice(start, i))) break;
        i++;
      }
      out.push({ k: "id", v: q.slice(start, i), pos: start });
      continue;
    }
    const op = OPERATORS.find((o) => q.startsWith(o, i));
    if (!op) throw new KqlError("ParserFailure", `Unexpected character '${ch}' at position ${i}.`);
    out.push({ k: "op", v: op, pos: i });
    i += op.length;
  }
  out.push({ k: "end", v: "", pos: q.length });
  return out;
}

// ---------------------------------------------------------------- syntax

export type Expr =
  | { k: "lit"; v: unknown }
  | { k: "col"; name: string }
  | { k: "member"; obj: Expr; key: string | number }
  | { k: "call"; fn: string; args: Array<{ name?: string; e: Expr }> }
  | { k: "bin"; op: string; l: Expr; r: Expr }
  | { k: "neg"; e: Expr };

export type Stage =
  | { k: "where"; e: Expr }
  | { k: "extend"; cols: Array<{ name: string; e: Expr }> }
  | { k: "project"; cols: Array<{ name: string; e: Expr }> }
  | { k: "take"; n: number }
  | { k: "order"; by: Array<{ e: Expr; desc: boolean }> };

export interface Query {
  table: string;
  stages: Stage[];
}

const TABULAR_OPERATORS = ["where", "extend", "project", "take", "limit", "order", "sort"];
const FUNCTIONS = ["substring", "indexof", "strcat", "parse_json", "todynamic", "tostring", "tolower", "toupper", "isempty", "isnotempty"];
const COMPARISONS = ["==", "!=", "=~", "!~", "<", "<=", ">", ">="];

class Parser {
  private t: Token[];
  private i = 0;
  constructor(q: string) {
    this.t = tokenize(q);
  }
  private peek(o = 0): Token {
    return this.t[Math.min(this.i + o, this.t.length - 1)];
  }
  private next(): Token {
    return this.t[this.i++];
  }
  private isOp(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t.k === "op" && t.v === v;
  }
  private isWord(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t.k === "id" && t.v.toLowerCase() === v;
  }
  private expectOp(v: string): void {
    const t = this.next();
    if (t.k !== "op" || t.v !== v) throw new KqlError("ParserFailure", `Expected '${v}' at position ${t.pos}, found '${t.v || "end of query"}'.`);
  }
  private ident(what: string): string {
    const t = this.next();
    if (t.k !== "id") throw new KqlError("ParserFailure", `Expected ${what} at position ${t.pos}, found '${t.v || "end of query"}'.`);
    return t.v;
  }

  query(): Query {
    const table = this.ident("a table name");
    const stages: Stage[] = [];
    while (this.isOp("|")) {
      this.next();
      stages.push(this.stage());
    }
    const t = this.peek();
    if (t.k !== "end") throw new KqlError("ParserFailure", `Unexpected '${t.v}' at position ${t.pos}.`);
    return { table, stages };
  }

  private stage(): Stage {
    const t = this.next();
    const op = t.k === "id" ? t.v.toLowerCase() : t.v;
    if (t.k !== "id" || !TABULAR_OPERATORS.includes(op)) {
      throw new KqlError("UnsupportedOperator",
        `The tabular operator '${t.v || "(none)"}' is not supported by the sandbox's Resource Graph (supported: ${TABULAR_OPERATORS.join(", ")}).`);
    }
    switch (op) {
      case "where":
        return { k: "where", e: this.expr() };
      case "extend":
        return { k: "extend", cols: this.list(() => this.assignment(true)) };
      case "project":
        return { k: "project", cols: this.list(() => this.assignment(false)) };
      case "take":
      case "limit": {
        const n = this.next();
        if (n.k !== "num" || !/^\d+$/.test(n.v)) throw new KqlError("ParserFailure", `'${op}' needs a whole number at position ${n.pos}.`);
        return { k: "take", n: Number(n.v) };
      }
      default: {
        if (!this.isWord("by")) throw new KqlError("ParserFailure", `Expected 'by' after '${op}' at position ${this.peek().pos}.`);
        this.next();
        return {
          k: "order",
          by: this.list(() => {
            const e = this.expr();
            let desc = true; // KQL's default order is descending
            if (this.isWord("asc") || this.isWord("desc")) desc = this.next().v.toLowerCase() === "desc";
            return { e, desc };
          }),
        };
      }
    }
  }

  private list<T>(item: () => T): T[] {
    const out = [item()];
    while (this.isOp(",")) {
      this.next();
      out.push(item());
    }
    return out;
  }

  /** `name = expr`, or (project) a column or member path whose name is derived. */
  private assignment(requireName: boolean): { name: string; e: Expr } {
    if (this.peek().k === "id" && this.isOp("=", 1)) {
      const name = this.ident("a column name");
      this.next();
      return { name, e: this.expr() };
    }
    if (requireName) throw new KqlError("ParserFailure", `'extend' needs 'name = expression' at position ${this.peek().pos}.`);
    const e = this.expr();
    const name = pathName(e);
    if (!name) throw new KqlError("ParserFailure", "'project' of an expression needs 'name = expression'.");
    return { name, e };
  }

  expr(): Expr {
    let l = this.and();
    while (this.isWord("or")) {
      this.next();
      l = { k: "bin", op: "or", l, r: this.and() };
    }
    return l;
  }
  private and(): Expr {
    let l = this.cmp();
    while (this.isWord("and")) {
      this.next();
      l = { k: "bin", op: "and", l, r: this.cmp() };
    }
    return l;
  }
  private cmp(): Expr {
    const l = this.add();
    const t = this.peek();
    if (t.k === "op" && COMPARISONS.includes(t.v)) {
      this.next();
      return { k: "bin", op: t.v, l, r: this.add() };
    }
    // Word operators (contains, has, in, startswith, matches regex, …) are outside the subset.
    if (t.k === "id" && !["and", "or", "asc", "desc"].includes(t.v.toLowerCase())) {
      throw new KqlError("UnsupportedOperator", `The operator '${t.v}' is not supported by the sandbox's Resource Graph (supported: ${COMPARISONS.join(" ")} and or).`);
    }
    return l;
  }
  private add(): Expr {
    let l = this.unary();
    while (this.isOp("+") || this.isOp("-")) {
      const op = this.next().v;
      l = { k: "bin", op, l, r: this.unary() };
    }
    if (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
      throw new KqlError("UnsupportedOperator", `The operator '${this.peek().v}' is not supported by the sandbox's Resource Graph.`);
    }
    return l;
  }
  private unary(): Expr {
    if (this.isOp("-")) {
      this.next();
      return { k: "neg", e: this.unary() };
    }
    return this.postfix();
  }
  private postfix(): Expr {
    let e = this.primary();
    for (;;) {
      if (this.isOp(".")) {
        this.next();
        e = { k: "member", obj: e, key: this.ident("a property name") };
      } else if (this.isOp("[")) {
        this.next();
        const t = this.next();
        if (t.k !== "str" && t.k !== "num") throw new KqlError("ParserFailure", `Expected a string or index at position ${t.pos}.`);
        this.expectOp("]");
        e = { k: "member", obj: e, key: t.k === "num" ? Number(t.v) : t.v };
      } else return e;
    }
  }
  private primary(): Expr {
    const t = this.next();
    if (t.k === "str") return { k: "lit", v: t.v };
    if (t.k === "num") return { k: "lit", v: Number(t.v) };
    if (t.k === "op" && t.v === "(") {
      const e = this.expr();
      this.expectOp(")");
      return e;
    }
    if (t.k === "id") {
      const w = t.v.toLowerCase();
      if (this.isOp("(")) {
        if (!FUNCTIONS.includes(w)) {
          throw new KqlError("UnknownFunction", `The function '${t.v}' is not supported by the sandbox's Resource Graph (supported: ${FUNCTIONS.join(", ")}).`);
        }
        this.next();
        const args: Array<{ name?: string; e: Expr }> = [];
        if (!this.isOp(")")) {
          args.push(...this.list(() => {
            if (this.peek().k === "id" && this.isOp("=", 1)) {
              const name = this.ident("an argument name");
              this.next();
              return { name, e: this.expr() };
            }
            return { e: this.expr() };
          }));
        }
        this.expectOp(")");
        return { k: "call", fn: w, args };
      }
      if (w === "true" || w === "false") return { k: "lit", v: w === "true" };
      if (w === "null") return { k: "lit", v: null };
      return { k: "col", name: t.v };
    }
    throw new KqlError("ParserFailure", `Unexpected '${t.v || "end of query"}' at position ${t.pos}.`);
  }
}

/** properties.a.b → properties_a_b (KQL's name for a projected path). */
function pathName(e: Expr): string | undefined {
  if (e.k === "col") return e.name;
  if (e.k === "member") {
    const base = pathName(e.obj);
    return base === undefined ? undefined : `${base}_${e.key}`;
  }
  return undefined;
}

export function parseKql(q: string): Query {
  if (typeof q !== "string" || !q.trim()) throw new KqlError("ParserFailure", "The query is empty.");
  return new Parser(q).query();
}

// ---------------------------------------------------------------- evaluation

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
