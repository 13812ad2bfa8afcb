// The subset of KQL (Kusto Query Language) Resource Graph queries in this project use, and
// nothing silently: every operator, function or column outside the subset is a KqlError that
// names it. Supported:
//   <table> | where <expr> | extend a = <expr>, … | project a, b = <expr>, … | take n | limit n
//   | order by <expr> [asc|desc], … (sort by)
// Expressions: literals ("…", '…', numbers, true, false, null), columns, member access (a.b,
// a['b'], a[0]), + - on numbers, == != =~ !~ < <= > >=, and, or, parentheses, and the functions
// substring, indexof (named arguments too), strcat, parse_json/todynamic, tostring, tolower,
// toupper, isempty, isnotempty.
// This file parses (tokens, syntax tree); kql-eval.mts runs a parsed query over rows.

export class KqlError extends Error {
  /** Resource Graph's detail code. */
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "KqlError";
    this.code = code;
  }
}

export type Row = Record<string, unknown>;

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
