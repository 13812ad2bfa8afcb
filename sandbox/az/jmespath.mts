/**
 * A JMESPath subset for the az stand-in's `--query`: fields (bare and "quoted"), sub-expressions,
 * indexes (also negative), list projections `[*]`, flatten `[]`, object projections `*`,
 * filters `[?a == 'x']`, multi-select lists `[a, b]` and hashes `{k: a}`, `@`, literals
 * (`'raw'`, `` `json` ``), comparisons, `&&`, `||`, `!`, `|`, and the functions length,
 * contains, starts_with, ends_with, keys, values, join, sort, to_string, to_number.
 * Slices, `&expressions` and other functions throw a JmesPathError: the caller turns that
 * into az's "invalid jmespath_type value" usage error. Semantics follow jmespath.py, which
 * az uses; multi-select hashes keep their key order (az builds them as OrderedDicts).
 *
 * @example
 * search({ properties: { outputs: { x: { value: 1 } } } }, "properties.outputs.x.value") // 1
 */

export class JmesPathError extends Error {
  code = "ERR_JMESPATH";
  constructor(message: string) {
    super(message);
    this.name = "JmesPathError";
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

type Node =
  | { t: "field"; name: string }
  | { t: "current" }
  | { t: "literal"; value: Json }
  | { t: "sub"; left: Node; right: Node }
  | { t: "index"; left: Node; index: number }
  | { t: "project"; left: Node; right: Node }
  | { t: "valueProject"; left: Node; right: Node }
  | { t: "filter"; left: Node; cond: Node; right: Node }
  | { t: "flatten"; left: Node }
  | { t: "multiList"; items: Node[] }
  | { t: "multiHash"; pairs: Array<[string, Node]> }
  | { t: "cmp"; op: string; left: Node; right: Node }
  | { t: "and" | "or" | "pipe"; left: Node; right: Node }
  | { t: "not"; expr: Node }
  | { t: "call"; name: string; args: Node[] };

type Tok = { t: string; v?: Json; pos: number };

// Binding powers, as in jmespath.py.
const BP: Record<string, number> = {
  eof: 0, ident: 0, quoted: 0, literal: 0, rbracket: 0, rparen: 0, comma: 0, rbrace: 0, number: 0, current: 0, colon: 0,
  pipe: 1, or: 2, and: 3, eq: 5, ne: 5, gt: 5, gte: 5, lt: 5, lte: 5,
  flatten: 9, star: 20, filter: 21, dot: 40, not: 45, lbrace: 50, lbracket: 55, lparen: 60,
};
const PROJECTION_STOP = 10;

function _lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  const simple: Record<string, string> = { ".": "dot", "*": "star", ",": "comma", ":": "colon", "{": "lbrace", "}": "rbrace", "]": "rbracket", "(": "lparen", ")": "rparen", "@": "current" };
  while (i < src.length) {
    const c = src[i];
    const pos = i;
    if (/\s/.test(c)) {
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j])) j++;
      toks.push({ t: "ident", v: src.slice(i, j), pos });
      i = j;
    } else if (/[0-9-]/.test(c)) {
      const m = /^-?\d+/.exec(src.slice(i));
      if (!m) throw new JmesPathError(`unexpected '-' at ${i}`);
      toks.push({ t: "number", v: Number(m[0]), pos });
      i += m[0].length;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      if (j >= src.length) throw new JmesPathError(`unterminated ${c} at ${i}`);
      const body = src.slice(i + 1, j);
      i = j + 1;
      try {
        if (c === '"') toks.push({ t: "quoted", v: JSON.parse(`"${body}"`) as string, pos });
        else if (c === "'") toks.push({ t: "literal", v: body.replace(/\\'/g, "'"), pos });
        else toks.push({ t: "literal", v: JSON.parse(body.replace(/\\`/g, "`")) as Json, pos });
      } catch {
        throw new JmesPathError(`invalid ${c === '"' ? "quoted identifier" : "literal"} at ${pos}`);
      }
    } else if (c === "[") {
      if (src[i + 1] === "?") {
        toks.push({ t: "filter", pos });
        i += 2;
      } else if (src[i + 1] === "]") {
        toks.push({ t: "flatten", pos });
        i += 2;
      } else {
        toks.push({ t: "lbracket", pos });
        i++;
      }
    } else if (c in simple) {
      toks.push({ t: simple[c], pos });
      i++;
    } else {
      const two = src.slice(i, i + 2);
      const ops: Record<string, string> = { "==": "eq", "!=": "ne", ">=": "gte", "<=": "lte", "&&": "and", "||": "or" };
      if (two in ops) {
        toks.push({ t: ops[two], pos });
        i += 2;
        continue;
      }
      const one: Record<string, string> = { "<": "lt", ">": "gt", "!": "not", "|": "pipe", "&": "expref" };
      if (c in one) {
        if (c === "&") throw new JmesPathError("expression references (&) are not supported by the sandbox's az");
        toks.push({ t: one[c], pos });
        i++;
        continue;
      }
      throw new JmesPathError(`unexpected character '${c}' at ${i}`);
    }
  }
  toks.push({ t: "eof", pos: src.length });
  return toks;
}

class _Parser {
  toks: Tok[];
  i = 0;
  constructor(toks: Tok[]) {
    this.toks = toks;
  }
  peek(o = 0): Tok {
    return this.toks[Math.min(this.i + o, this.toks.length - 1)];
  }
  advance(): Tok {
    return this.toks[this.i++];
  }
  match(t: string): Tok {
    const tok = this.peek();
    if (tok.t !== t) throw new JmesPathError(`expected ${t} at ${tok.pos}, found ${tok.t}`);
    return this.advance();
  }

  expression(bp = 0): Node {
    let left = this.nud(this.advance());
    while (bp < (BP[this.peek().t] ?? 0)) left = this.led(this.advance(), left);
    return left;
  }

  nud(tok: Tok): Node {
    switch (tok.t) {
      case "ident":
        return { t: "field", name: tok.v as string };
      case "quoted":
        if (this.peek().t === "lparen") throw new JmesPathError("quoted identifiers cannot be function names");
        return { t: "field", name: tok.v as string };
      case "literal":
        return { t: "literal", value: tok.v as Json };
      case "current":
        return { t: "current" };
      case "star":
        return { t: "valueProject", left: { t: "current" }, right: this.projectionRhs(BP.star) };
      case "filter":
        return this.filter({ t: "current" });
      case "flatten":
        return { t: "project", left: { t: "flatten", left: { t: "current" } }, right: this.projectionRhs(BP.flatten) };
      case "lbrace":
        return this.multiHash();
      case "lbracket": {
        const next = this.peek().t;
        if (next === "number" || next === "colon") return this.index({ t: "current" });
        if (next === "star" && this.peek(1).t === "rbracket") {
          this.advance();
          this.advance();
          return { t: "project", left: { t: "current" }, right: this.projectionRhs(BP.star) };
        }
        return this.multiList();
      }
      case "not":
        return { t: "not", expr: this.expression(BP.not) };
      case "lparen": {
        const e = this.expression();
        this.match("rparen");
        return e;
      }
    }
    throw new JmesPathError(`unexpected ${tok.t} at ${tok.pos}`);
  }

  led(tok: Tok, left: Node): Node {
    switch (tok.t) {
      case "dot":
        if (this.peek().t === "star") {
          this.advance();
          return { t: "valueProject", left, right: this.projectionRhs(BP.star) };
        }
        return { t: "sub", left, right: this.dotRhs(BP.dot) };
      case "pipe":
        return { t: "pipe", left, right: this.expression(BP.pipe) };
      case "or":
      case "and":
        return { t: tok.t, left, right: this.expression(BP[tok.t]) };
      case "eq":
      case "ne":
      case "gt":
      case "gte":
      case "lt":
      case "lte":
        return { t: "cmp", op: tok.t, left, right: this.expression(BP[tok.t]) };
      case "flatten":
        return { t: "project", left: { t: "flatten", left }, right: this.projectionRhs(BP.flatten) };
      case "filter":
        return this.filter(left);
      case "lbracket": {
        const next = this.peek().t;
        if (next === "number" || next === "colon") return this.index(left);
        this.match("star");
        this.match("rbracket");
        return { t: "project", left, right: this.projectionRhs(BP.star) };
      }
      case "lparen": {
        if (left.t !== "field") throw new JmesPathError(`invalid function call at ${tok.pos}`);
        const args: Node[] = [];
        while (this.peek().t !== "rparen") {
          args.push(this.expression());
          if (this.peek().t === "comma") this.advance();
        }
        this.match("rparen");
        return { t: "call", name: left.name, args };
      }
    }
    throw new JmesPathError(`unexpected ${tok.t} at ${tok.pos}`);
  }

  index(left: Node): Node {
    const n = this.peek();
    if (n.t === "colon" || this.peek(1).t === "colon") throw new JmesPathError("slices are not supported by the sandbox's az");
    this.advance();
    this.match("rbracket");
    return { t: "index", left, index: n.v as number };
  }

  filter(left: Node): Node {
    const cond = this.expression();
    this.match("rbracket");
    return { t: "filter", left, cond, right: this.projectionRhs(BP.filter) };
  }

  multiList(): Node {
    const items: Node[] = [];
    for (;;) {
      items.push(this.expression());
      if (this.peek().t === "rbracket") break;
      this.match("comma");
    }
    this.match("rbracket");
    return { t: "multiList", items };
  }

  multiHash(): Node {
    const pairs: Array<[string, Node]> = [];
    for (;;) {
      const key = this.advance();
      if (key.t !== "ident" && key.t !== "quoted") throw new JmesPathError(`expected a key name at ${key.pos}`);
      this.match("colon");
      pairs.push([key.v as string, this.expression()]);
      if (this.peek().t === "rbrace") break;
      this.match("comma");
    }
    this.match("rbrace");
    return { t: "multiHash", pairs };
  }

  dotRhs(bp: number): Node {
    const t = this.peek().t;
    if (t === "ident" || t === "quoted" || t === "star") return this.expression(bp);
    if (t === "lbracket") {
      this.advance();
      return this.multiList();
    }
    if (t === "lbrace") {
      this.advance();
      return this.multiHash();
    }
    throw new JmesPathError(`expected an identifier, '[' or '{' after '.' at ${this.peek().pos}`);
  }

  projectionRhs(bp: number): Node {
    const t = this.peek().t;
    if ((BP[t] ?? 0) < PROJECTION_STOP) return { t: "current" };
    if (t === "lbracket" || t === "filter") return this.expression(bp);
    if (t === "dot") {
      this.advance();
      return this.dotRhs(bp);
    }
    throw new JmesPathError(`unexpected ${t} at ${this.peek().pos}`);
  }
}

/** Objects built by multi-select hashes: their key order is kept (az's OrderedDict). */
export const orderedObjects = new WeakSet<object>();

function _isObject(v: unknown): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function _truthy(v: Json): boolean {
  if (v === null || v === false || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (_isObject(v)) return Object.keys(v).length > 0;
  return true;
}
function _equal(a: Json, b: Json): boolean {
  return JSON.stringify(_canonical(a)) === JSON.stringify(_canonical(b));
}
function _canonical(v: Json): Json {
  if (Array.isArray(v)) return v.map(_canonical);
  if (_isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, _canonical(v[k])]));
  return v;
}

function _call(name: string, args: Json[]): Json {
  const arity = (n: number) => {
    if (args.length !== n) throw new JmesPathError(`${name}() takes ${n} argument(s), got ${args.length}`);
  };
  switch (name) {
    case "length": {
      arity(1);
      const [v] = args;
      if (typeof v === "string" || Array.isArray(v)) return v.length;
      if (_isObject(v)) return Object.keys(v).length;
      break;
    }
    case "contains": {
      arity(2);
      const [s, x] = args;
      if (typeof s === "string" && typeof x === "string") return s.includes(x);
      if (Array.isArray(s)) return s.some((y) => _equal(y, x));
      break;
    }
    case "starts_with":
    case "ends_with": {
      arity(2);
      const [s, p] = args;
      if (typeof s === "string" && typeof p === "string") return name === "starts_with" ? s.startsWith(p) : s.endsWith(p);
      break;
    }
    case "keys":
    case "values":
      arity(1);
      if (_isObject(args[0])) return name === "keys" ? Object.keys(args[0]) : Object.values(args[0]);
      break;
    case "join":
      arity(2);
      if (typeof args[0] === "string" && Array.isArray(args[1]) && args[1].every((x) => typeof x === "string")) return args[1].join(args[0]);
      break;
    case "sort":
      arity(1);
      if (Array.isArray(args[0]) && (args[0].every((x) => typeof x === "string") || args[0].every((x) => typeof x === "number"))) {
        return [...args[0]].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      }
      break;
    case "to_string":
      arity(1);
      return typeof args[0] === "string" ? args[0] : JSON.stringify(args[0]);
    case "to_number": {
      arity(1);
      const [v] = args;
      if (typeof v === "number") return v;
      if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
      return null;
    }
    default:
      throw new JmesPathError(`the function ${name}() is not supported by the sandbox's az`);
  }
  throw new JmesPathError(`invalid type for value: ${JSON.stringify(args)} in ${name}()`);
}

function _visit(n: Node, v: Json): Json {
  switch (n.t) {
    case "field":
      return _isObject(v) && Object.hasOwn(v, n.name) ? v[n.name] : null;
    case "current":
      return v;
    case "literal":
      return n.value;
    case "sub":
      return _visit(n.right, _visit(n.left, v));
    case "index": {
      const base = _visit(n.left, v);
      if (!Array.isArray(base)) return null;
      const i = n.index < 0 ? base.length + n.index : n.index;
      return i >= 0 && i < base.length ? base[i] : null;
    }
    case "project": {
      const base = _visit(n.left, v);
      if (!Array.isArray(base)) return null;
      return base.map((x) => _visit(n.right, x)).filter((x) => x !== null);
    }
    case "valueProject": {
      const base = _visit(n.left, v);
      if (!_isObject(base)) return null;
      return Object.values(base).map((x) => _visit(n.right, x)).filter((x) => x !== null);
    }
    case "filter": {
      const base = _visit(n.left, v);
      if (!Array.isArray(base)) return null;
      return base.filter((x) => _truthy(_visit(n.cond, x))).map((x) => _visit(n.right, x)).filter((x) => x !== null);
    }
    case "flatten": {
      const base = _visit(n.left, v);
      if (!Array.isArray(base)) return null;
      return base.flatMap((x) => (Array.isArray(x) ? x : [x]));
    }
    case "multiList":
      return v === null ? null : n.items.map((x) => _visit(x, v));
    case "multiHash": {
      if (v === null) return null;
      const out = Object.fromEntries(n.pairs.map(([k, x]) => [k, _visit(x, v)]));
      orderedObjects.add(out);
      return out;
    }
    case "cmp": {
      const a = _visit(n.left, v);
      const b = _visit(n.right, v);
      if (n.op === "eq") return _equal(a, b);
      if (n.op === "ne") return !_equal(a, b);
      if (typeof a !== "number" || typeof b !== "number") return null;
      return n.op === "gt" ? a > b : n.op === "gte" ? a >= b : n.op === "lt" ? a < b : a <= b;
    }
    case "and": {
      const a = _visit(n.left, v);
      return _truthy(a) ? _visit(n.right, v) : a;
    }
    case "or": {
      const a = _visit(n.left, v);
      return _truthy(a) ? a : _visit(n.right, v);
    }
    case "not":
      return !_truthy(_visit(n.expr, v));
    case "pipe":
      return _visit(n.right, _visit(n.left, v));
    case "call":
      return _call(n.name, n.args.map((a) => _visit(a, v)));
  }
}

/** Parses a query (throws JmesPathError) and returns a function applying it. */
export function compile(expression: string): (data: unknown) => unknown {
  const parser = new _Parser(_lex(expression));
  const ast = parser.expression();
  if (parser.peek().t !== "eof") throw new JmesPathError(`unexpected ${parser.peek().t} at ${parser.peek().pos}`);
  return (data) => _visit(ast, data as Json);
}

/** Applies a JMESPath query to JSON data. */
export function search(data: unknown, expression: string): unknown {
  return compile(expression)(data);
}
