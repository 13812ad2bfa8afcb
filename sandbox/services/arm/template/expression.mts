// ARM's template language expressions: a JSON string "[fn(args).prop[idx]]" is an expression,
// "[[..." is the literal text "[...". This parser turns one into the syntax tree the shared
// template functions (functions.mts) evaluate: string and integer literals,
// function calls, member access (.name) and index access ([expr]). Positions are columns of
// the expression string (line 1), as ARM reports them.
import type { Expr, Pos } from "./types.mts";
import { ExpressionError } from "./errors.mts";

/** Whether a JSON string is a template expression. */
export const isExpression = (s: string): boolean => s.startsWith("[") && !s.startsWith("[[") && s.endsWith("]");

/** A literal string's value: "[[x]" → "[x]". */
export const literalText = (s: string): string => (s.startsWith("[[") ? s.slice(1) : s);

interface Tok {
  t: "ident" | "str" | "int" | "punct";
  v: string;
  pos: Pos;
}

function tokenize(src: string, offset: number): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const at = (k: number): Pos => ({ line: 1, column: offset + k + 1 });
  while (i < src.length) {
    const ch = src[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === "'") {
      let v = "";
      const start = i++;
      for (;;) {
        if (i >= src.length) throw new ExpressionError(at(start), "The string literal is not terminated.");
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += src[i++];
      }
      out.push({ t: "str", v, pos: at(start) });
      continue;
    }
    if (/[0-9]/.test(ch) || (ch === "-" && /[0-9]/.test(src[i + 1] ?? ""))) {
      const m = /^-?[0-9]+(\.[0-9]+)?/.exec(src.slice(i))!;
      if (m[1]) throw new ExpressionError(at(i), `The number '${m[0]}' is not an integer; only integers are supported.`);
      out.push({ t: "int", v: m[0], pos: at(i) });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      out.push({ t: "ident", v: m[0], pos: at(i) });
      i += m[0].length;
      continue;
    }
    if ("(),.[]".includes(ch)) {
      out.push({ t: "punct", v: ch, pos: at(i) });
      i++;
      continue;
    }
    throw new ExpressionError(at(i), `The character '${ch}' is not expected in a template language expression.`);
  }
  return out;
}

/** Parses the inside of "[...]" (the brackets stripped by the caller). */
export function parseExpression(text: string): Expr {
  const inner = text.slice(1, -1);
  const toks = tokenize(inner, 1);
  let k = 0;
  const peek = () => toks[k];
  const expect = (v: string) => {
    const t = toks[k];
    if (!t || t.t !== "punct" || t.v !== v) {
      throw new ExpressionError(t?.pos ?? { line: 1, column: text.length }, `Expected '${v}' ${t ? `but found '${t.v}'` : "at the end of the expression"}.`);
    }
    k++;
  };
  const primary = (): Expr => {
    const t = toks[k++];
    if (!t) throw new ExpressionError({ line: 1, column: text.length }, "The expression is incomplete.");
    if (t.t === "str") return { kind: "string", parts: [t.v], exprs: [], pos: t.pos };
    if (t.t === "int") return { kind: "int", value: parseInt(t.v, 10), pos: t.pos };
    if (t.t === "ident") {
      if (!(peek()?.t === "punct" && peek().v === "(")) {
        const lower = t.v.toLowerCase();
        if (lower === "true" || lower === "false") return { kind: "bool", value: lower === "true", pos: t.pos };
        if (lower === "null") return { kind: "null", pos: t.pos };
        throw new ExpressionError(t.pos, `The identifier '${t.v}' must be a function call: '${t.v}(...)'.`);
      }
      k++;
      const args: Expr[] = [];
      if (!(peek()?.t === "punct" && peek().v === ")")) {
        for (;;) {
          args.push(expr());
          if (peek()?.t === "punct" && peek().v === ",") {
            k++;
            continue;
          }
          break;
        }
      }
      expect(")");
      return { kind: "call", name: t.v, args, pos: t.pos };
    }
    throw new ExpressionError(t.pos, `The character '${t.v}' is not expected here.`);
  };
  const expr = (): Expr => {
    let e = primary();
    for (;;) {
      const t = peek();
      if (t?.t === "punct" && t.v === ".") {
        k++;
        const name = toks[k++];
        if (!name || name.t !== "ident") throw new ExpressionError(t.pos, "Expected a property name after '.'.");
        e = { kind: "member", object: e, name: name.v, safe: false, pos: name.pos };
      } else if (t?.t === "punct" && t.v === "[") {
        k++;
        const index = expr();
        expect("]");
        e = { kind: "index", object: e, index, safe: false, pos: t.pos };
      } else return e;
    }
  };
  const e = expr();
  if (k < toks.length) throw new ExpressionError(toks[k].pos, `The expression has unexpected text '${toks[k].v}' after its end.`);
  return e;
}
