// The Bicep lexer: identifiers, ints, strings (with interpolation holes, escapes and multi-line strings),
// punctuation and newlines, each with its line and column.
import { BicepSyntaxError, UNSUPPORTED } from "./errors.mts";
import type { Pos } from "./types.mts";

export type Tok =
  | { t: "ident"; v: string; pos: Pos }
  | { t: "int"; v: number; pos: Pos }
  | { t: "str"; parts: string[]; holes: Tok[][]; pos: Pos }
  | { t: "punct"; v: string; pos: Pos }
  | { t: "nl"; pos: Pos }
  | { t: "eof"; pos: Pos };

const PUNCT2 = ["??", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "::", "=>"];
const PUNCT1 = "{}[](),:.?=<>!+-*/%@|";

export class Lexer {
  src: string;
  file: string;
  i = 0;
  line = 1;
  col = 1;
  constructor(src: string, file: string) {
    this.src = src;
    this.file = file;
  }

  pos(): Pos {
    return { line: this.line, column: this.col };
  }

  err(pos: Pos, message: string): never {
    throw new BicepSyntaxError(this.file, pos, message);
  }

  adv(n = 1): void {
    for (let k = 0; k < n; k++) {
      if (this.src[this.i] === "\n") {
        this.line++;
        this.col = 1;
      } else {
        this.col++;
      }
      this.i++;
    }
  }

  tokenize(): Tok[] {
    const out: Tok[] = [];
    for (;;) {
      const t = this.next();
      out.push(t);
      if (t.t === "eof") return out;
    }
  }

  next(): Tok {
    const s = this.src;
    for (;;) {
      const c = s[this.i];
      if (c === " " || c === "\t" || c === "\r" || c === "\uFEFF") {
        this.adv();
      } else if (c === "/" && s[this.i + 1] === "/") {
        while (this.i < s.length && s[this.i] !== "\n") this.adv();
      } else if (c === "/" && s[this.i + 1] === "*") {
        const start = this.pos();
        const end = s.indexOf("*/", this.i + 2);
        if (end < 0) this.err(start, "Unterminated multi-line comment");
        const hadNewline = s.slice(this.i, end).includes("\n");
        this.adv(end + 2 - this.i);
        if (hadNewline) return { t: "nl", pos: start };
      } else {
        break;
      }
    }
    const pos = this.pos();
    if (this.i >= s.length) return { t: "eof", pos };
    const c = s[this.i];
    if (c === "\n") {
      this.adv();
      return { t: "nl", pos };
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = this.i;
      while (j < s.length && /[A-Za-z0-9_]/.test(s[j])) j++;
      const v = s.slice(this.i, j);
      this.adv(j - this.i);
      return { t: "ident", v, pos };
    }
    if (/[0-9]/.test(c)) {
      let j = this.i;
      while (j < s.length && /[0-9]/.test(s[j])) j++;
      if (s[j] === "." && /[0-9]/.test(s[j + 1] ?? "")) {
        this.err(pos, `Floating-point numbers are ${UNSUPPORTED} (Bicep has integers only)`);
      }
      const v = Number(s.slice(this.i, j));
      this.adv(j - this.i);
      return { t: "int", v, pos };
    }
    if (c === "'") {
      return s.startsWith("'''", this.i) ? this.multiLineString(pos) : this.string(pos);
    }
    const two = s.slice(this.i, this.i + 2);
    if (PUNCT2.includes(two)) {
      this.adv(2);
      return { t: "punct", v: two, pos };
    }
    if (PUNCT1.includes(c)) {
      this.adv();
      return { t: "punct", v: c, pos };
    }
    if (c === '"') this.err(pos, "Strings in Bicep use single quotes ('...'), not double quotes");
    this.err(pos, `Unexpected character '${c}'`);
  }

  multiLineString(pos: Pos): Tok {
    this.adv(3);
    // Bicep drops one line break right after the opening '''.
    if (this.src.startsWith("\r\n", this.i)) this.adv(2);
    else if (this.src[this.i] === "\n") this.adv();
    const end = this.src.indexOf("'''", this.i);
    if (end < 0) this.err(pos, "Unterminated multi-line string");
    let text = this.src.slice(this.i, end);
    this.adv(end - this.i + 3);
    // A quote right before the closing ''' belongs to the string ('''it's''''): take the last ''' run.
    while (this.src[this.i] === "'") {
      text += "'";
      this.adv();
    }
    return { t: "str", parts: [text], holes: [], pos };
  }

  string(pos: Pos): Tok {
    const s = this.src;
    this.adv(); // opening quote
    const parts: string[] = [];
    const holes: Tok[][] = [];
    let cur = "";
    for (;;) {
      if (this.i >= s.length || s[this.i] === "\n") this.err(pos, "Unterminated string");
      const c = s[this.i];
      if (c === "'") {
        this.adv();
        break;
      }
      if (c === "\\") {
        const escPos = this.pos();
        const e = s[this.i + 1];
        const simple: Record<string, string> = { "\\": "\\", "'": "'", n: "\n", r: "\r", t: "\t", $: "$" };
        if (e !== undefined && e in simple) {
          cur += simple[e];
          this.adv(2);
        } else if (e === "u" && s[this.i + 2] === "{") {
          const close = s.indexOf("}", this.i + 3);
          const hex = close < 0 ? "" : s.slice(this.i + 3, close);
          if (!/^[0-9A-Fa-f]{1,6}$/.test(hex)) this.err(escPos, "Invalid \\u{...} escape sequence");
          cur += String.fromCodePoint(parseInt(hex, 16));
          this.adv(close + 1 - this.i);
        } else {
          this.err(escPos, `The specified escape sequence '\\${e ?? ""}' is not recognized. Only \\$, \\', \\\\, \\n, \\r, \\t and \\u{...} are permitted`);
        }
        continue;
      }
      if (c === "$" && s[this.i + 1] === "{") {
        const holePos = this.pos();
        this.adv(2);
        const hole: Tok[] = [];
        let depth = 0;
        for (;;) {
          const t = this.next();
          if (t.t === "eof") this.err(holePos, "Unterminated string interpolation");
          if (t.t === "punct" && t.v === "{") depth++;
          if (t.t === "punct" && t.v === "}") {
            if (depth === 0) {
              hole.push({ t: "eof", pos: t.pos });
              break;
            }
            depth--;
          }
          if (t.t !== "nl") hole.push(t);
        }
        parts.push(cur);
        holes.push(hole);
        cur = "";
        continue;
      }
      cur += c;
      this.adv();
    }
    parts.push(cur);
    return { t: "str", parts, holes, pos };
  }
}
