/**
 * A Bicep subset evaluator: what the sandbox's `az deployment group create` runs instead of
 * the Bicep compiler plus ARM's template engine (neither exists on this machine).
 *
 * It understands the Bicep this project's templates are written in, and a little more:
 * `targetScope`, `param` (string int bool object array, with @description @allowed
 * @minLength @maxLength @minValue @maxValue @secure @metadata), `var`, `resource` (with
 * `existing`, `parent`, `scope`, `dependsOn`), `output`, `metadata`; expressions with
 * strings ('', interpolation, escapes, '''), ints, bools, null, objects, arrays, member and
 * index access (also the safe `.?` / `[?i]`), function calls, `? :`, `??`, `||`, `&&`,
 * `== != =~ !~`, `< <= > >=`, `+ - * / %`, `!` and unary `-`.
 * Everything else (modules, loops, conditions, lambdas, user types, imports, ...) is refused
 * with the file, line and column: never silently ignored.
 *
 * Deployment follows ARM: parameters are validated against the declarations before anything
 * is written (with ARM's error codes and messages), resources are put one at a time in
 * dependency order (implicit through symbol references, explicit through dependsOn), and
 * outputs come back typed the way ARM spells them (String, Int, Bool, Object, Array).
 *
 * @example
 * const { outputs } = await deployBicep({ source, fileName: "main.bicep", parameters: { userObjectId },
 *   context, putResource: (id, apiVersion, body) => armPut(id, apiVersion, body), getResource: armGet });
 */
import { createHash } from "node:crypto";

// ---------------------------------------------------------------------------------------------
// Public types

export type BicepType = "string" | "int" | "bool" | "object" | "array";
export type Value = null | string | number | boolean | Value[] | { [key: string]: Value };
export interface Pos {
  line: number;
  column: number;
}

export type Expr =
  | { kind: "string"; parts: string[]; exprs: Expr[]; pos: Pos }
  | { kind: "int"; value: number; pos: Pos }
  | { kind: "bool"; value: boolean; pos: Pos }
  | { kind: "null"; pos: Pos }
  | { kind: "ident"; name: string; pos: Pos }
  | { kind: "object"; props: ObjectProp[]; pos: Pos }
  | { kind: "array"; items: Expr[]; pos: Pos }
  | { kind: "member"; object: Expr; name: string; safe: boolean; pos: Pos }
  | { kind: "index"; object: Expr; index: Expr; safe: boolean; pos: Pos }
  | { kind: "call"; name: string; args: Expr[]; pos: Pos }
  | { kind: "unary"; op: "!" | "-"; operand: Expr; pos: Pos }
  | { kind: "binary"; op: string; left: Expr; right: Expr; pos: Pos }
  | { kind: "ternary"; cond: Expr; then: Expr; otherwise: Expr; pos: Pos };
export interface ObjectProp {
  /** The literal name; for an interpolated name ('${expr}': ...) the source text, with keyExpr set. */
  key: string;
  keyExpr?: Expr;
  value: Expr;
  pos: Pos;
}
type ObjectExpr = Extract<Expr, { kind: "object" }>;
type CallExpr = Extract<Expr, { kind: "call" }>;

export interface ParamDecl {
  name: string;
  type: BicepType;
  defaultValue?: Expr;
  description?: string;
  allowed?: Value[];
  minLength?: number;
  maxLength?: number;
  minValue?: number;
  maxValue?: number;
  secure: boolean;
  pos: Pos;
}
export interface VarDecl {
  name: string;
  value: Expr;
  description?: string;
  pos: Pos;
}
export interface ResourceDecl {
  symbol: string;
  type: string;
  apiVersion: string;
  existing: boolean;
  body: ObjectExpr;
  /** A resource loop `[for item in iterable: {...}]` / `[for (item, index) in iterable: {...}]`. */
  loop?: { item: string; index?: string; iterable: Expr };
  description?: string;
  pos: Pos;
}
export interface OutputDecl {
  name: string;
  type: BicepType;
  value: Expr;
  description?: string;
  secure: boolean;
  pos: Pos;
}
export interface BicepTemplate {
  fileName: string;
  targetScope: string;
  params: ParamDecl[];
  vars: VarDecl[];
  resources: ResourceDecl[];
  outputs: OutputDecl[];
}

export interface DeploymentContext {
  subscriptionId: string;
  tenantId: string;
  resourceGroup: { id: string; name: string; location: string };
  deployer: { objectId: string; tenantId: string };
  deploymentName: string;
}
export interface DeployBicepOptions {
  source: string;
  fileName: string;
  /** Plain values (not `{value}` wrappers), keyed by parameter name (matched case-insensitively, as ARM does). */
  parameters: Record<string, unknown>;
  context: DeploymentContext;
  /** PUT `id` at `apiVersion`; resolves to the resource as the provider returns it. Errors may carry `armError: {code, message}`. */
  putResource(id: string, apiVersion: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** GET `id` (for `existing` resources). */
  getResource(id: string, apiVersion: string): Promise<Record<string, unknown>>;
}
export interface DeployBicepResult {
  outputs: Record<string, { type: string; value: unknown }>;
  /** Ids of the resources put, in the order they were put (existing resources are not included). */
  resourceIds: string[];
  /** Every template parameter with its effective value, the way ARM records them (secure ones without value). */
  parameters: Record<string, { type: string; value?: unknown }>;
}

/** ARM's error object, as in `{"error": {...}}` bodies and deployment errors. */
export interface ArmError {
  code: string;
  message: string;
  target?: string;
  details?: ArmError[];
  additionalInfo?: unknown[];
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Base class; `code` is stable. */
export class BicepError extends Error {
  code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BicepError";
    this.code = code;
  }
}

/** Source the evaluator cannot parse or does not support, with its position (`file:line:column: ...`). */
export class BicepSyntaxError extends BicepError {
  fileName: string;
  line: number;
  column: number;
  constructor(fileName: string, pos: Pos, message: string) {
    super(`${fileName}:${pos.line}:${pos.column}: ${message}`, "ERR_BICEP_SYNTAX");
    this.name = "BicepSyntaxError";
    this.fileName = fileName;
    this.line = pos.line;
    this.column = pos.column;
  }
}

/** A deployment that ARM would reject (InvalidTemplate) or that failed (DeploymentFailed, ...); `code` = ARM's code. */
export class DeploymentError extends BicepError {
  error: ArmError;
  /** Resources already put when the deployment failed. */
  resourceIds: string[];
  constructor(error: ArmError, resourceIds: string[] = []) {
    super(error.message, error.code);
    this.name = "DeploymentError";
    this.error = error;
    this.resourceIds = resourceIds;
  }
}

/** A template language expression that failed while being evaluated (ARM reports these at run time). */
class _ExpressionError extends Error {
  pos: Pos;
  constructor(pos: Pos, message: string) {
    super(message);
    this.pos = pos;
  }
}

const UNSUPPORTED = "not supported by the sandbox's Bicep evaluator";

// ---------------------------------------------------------------------------------------------
// Lexer

type Tok =
  | { t: "ident"; v: string; pos: Pos }
  | { t: "int"; v: number; pos: Pos }
  | { t: "str"; parts: string[]; holes: Tok[][]; pos: Pos }
  | { t: "punct"; v: string; pos: Pos }
  | { t: "nl"; pos: Pos }
  | { t: "eof"; pos: Pos };

const PUNCT2 = ["??", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "::", "=>"];
const PUNCT1 = "{}[](),:.?=<>!+-*/%@|";

class _Lexer {
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

// ---------------------------------------------------------------------------------------------
// Parser

const TYPES = new Set<string>(["string", "int", "bool", "object", "array"]);
const BINARY_PRECEDENCE: Record<string, number> = {
  "??": 1,
  "||": 2,
  "&&": 3,
  "==": 4, "!=": 4, "=~": 4, "!~": 4,
  "<": 5, "<=": 5, ">": 5, ">=": 5,
  "+": 6, "-": 6,
  "*": 7, "/": 7, "%": 7,
};
const UNSUPPORTED_DECLARATIONS: Record<string, string> = {
  module: "Modules are",
  import: "Import statements are",
  type: "User-defined types are",
  func: "User-defined functions are",
  extension: "Extensions are",
  provider: "Providers are",
  using: "'using' declarations are",
  assert: "Assertions are",
};
type Decorator = { name: string; args: Value[]; pos: Pos };

class _Parser {
  toks: Tok[];
  i = 0;
  file: string;
  constructor(toks: Tok[], file: string) {
    this.toks = toks;
    this.file = file;
  }

  peek(offset = 0): Tok {
    return this.toks[Math.min(this.i + offset, this.toks.length - 1)];
  }
  next(): Tok {
    const t = this.peek();
    if (this.i < this.toks.length - 1) this.i++;
    return t;
  }
  err(pos: Pos, message: string): never {
    throw new BicepSyntaxError(this.file, pos, message);
  }
  isPunct(v: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.t === "punct" && t.v === v;
  }
  isIdent(v?: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.t === "ident" && (v === undefined || t.v === v);
  }
  expectPunct(v: string): Tok {
    const t = this.peek();
    if (t.t !== "punct" || t.v !== v) this.err(t.pos, `Expected the "${v}" character at this location`);
    return this.next();
  }
  expectIdent(what: string): { v: string; pos: Pos } {
    const t = this.peek();
    if (t.t !== "ident") this.err(t.pos, `Expected ${what} at this location`);
    this.next();
    return { v: t.v, pos: t.pos };
  }
  skipNl(): void {
    while (this.peek().t === "nl") this.next();
  }
  endOfStatement(): void {
    const t = this.peek();
    if (t.t !== "nl" && t.t !== "eof") this.err(t.pos, "Expected a new line character at this location");
  }

  // --- declarations

  parseProgram(): BicepTemplate {
    const tpl: BicepTemplate = { fileName: this.file, targetScope: "resourceGroup", params: [], vars: [], resources: [], outputs: [] };
    for (;;) {
      this.skipNl();
      if (this.peek().t === "eof") return tpl;
      const decorators: Decorator[] = [];
      while (this.isPunct("@")) {
        decorators.push(this.parseDecorator());
        this.skipNl();
      }
      const kw = this.peek();
      if (kw.t !== "ident") this.err(kw.pos, "Expected a declaration keyword (param, var, resource, output, targetScope) at this location");
      if (kw.v in UNSUPPORTED_DECLARATIONS) this.err(kw.pos, `${UNSUPPORTED_DECLARATIONS[kw.v]} ${UNSUPPORTED}`);
      this.next();
      switch (kw.v) {
        case "targetScope": {
          this.noDecorators(decorators, "targetScope");
          this.expectPunct("=");
          const e = this.parseExpr();
          const scope = e.kind === "string" && e.exprs.length === 0 ? e.parts[0] : "";
          if (scope !== "resourceGroup") this.err(e.pos, `targetScope '${scope}' is ${UNSUPPORTED} (only 'resourceGroup', for az deployment group create)`);
          tpl.targetScope = scope;
          break;
        }
        case "metadata": {
          this.noDecorators(decorators, "metadata");
          this.expectIdent("a metadata name");
          this.expectPunct("=");
          this.parseExpr();
          break;
        }
        case "param":
          tpl.params.push(this.parseParam(kw.pos, decorators));
          break;
        case "var": {
          const d = this.applyDecorators(decorators, ["description"], "variable");
          const name = this.expectIdent("a variable name");
          if (!this.isPunct("=")) this.err(this.peek().pos, `Typed variables are ${UNSUPPORTED}; write 'var ${name.v} = ...'`);
          this.next();
          tpl.vars.push({ name: name.v, value: this.parseExpr(), description: d.description as string | undefined, pos: kw.pos });
          break;
        }
        case "resource":
          tpl.resources.push(this.parseResource(kw.pos, decorators));
          break;
        case "output": {
          const d = this.applyDecorators(decorators, ["description", "secure", "metadata"], "output");
          const name = this.expectIdent("an output name");
          const type = this.parseType("output");
          this.expectPunct("=");
          tpl.outputs.push({ name: name.v, type, value: this.parseExpr(), description: d.description as string | undefined, secure: "secure" in d, pos: kw.pos });
          break;
        }
        default:
          this.err(kw.pos, `'${kw.v}' is not a declaration keyword; expected param, var, resource, output or targetScope`);
      }
      this.endOfStatement();
    }
  }

  noDecorators(decorators: Decorator[], what: string): void {
    if (decorators.length > 0) this.err(decorators[0].pos, `Decorators cannot be applied to ${what}`);
  }

  parseDecorator(): Decorator {
    const at = this.expectPunct("@");
    let name = this.expectIdent("a decorator name").v;
    if ((name === "sys" || name === "az") && this.isPunct(".")) {
      this.next();
      name = this.expectIdent("a decorator name").v;
    }
    if (!this.isPunct("(")) this.err(this.peek().pos, `Expected "(" after the decorator @${name}`);
    this.next();
    const args = this.parseArgs().map((e) => this.constant(e, `the @${name} decorator`));
    return { name, args, pos: at.pos };
  }

  /** Decorator arguments are compile-time constants. */
  constant(e: Expr, where: string): Value {
    switch (e.kind) {
      case "string":
        if (e.exprs.length > 0) break;
        return e.parts[0];
      case "int":
      case "bool":
        return e.value;
      case "null":
        return null;
      case "array":
        return e.items.map((x) => this.constant(x, where));
      case "object":
        if (e.props.some((p) => p.keyExpr)) break;
        return Object.fromEntries(e.props.map((p) => [p.key, this.constant(p.value, where)]));
      case "unary":
        if (e.op === "-" && e.operand.kind === "int") return -e.operand.value;
        break;
    }
    this.err(e.pos, `Arguments of ${where} must be constant values in the sandbox's Bicep evaluator`);
  }

  applyDecorators(decorators: Decorator[], allowed: string[], what: string): Record<string, Value> {
    const out: Record<string, Value> = {};
    for (const d of decorators) {
      if (!allowed.includes(d.name)) {
        const known = ["description", "allowed", "minLength", "maxLength", "minValue", "maxValue", "secure", "metadata"];
        if (known.includes(d.name)) this.err(d.pos, `The decorator @${d.name} cannot be applied to a ${what}`);
        this.err(d.pos, `The decorator @${d.name} is ${UNSUPPORTED}`);
      }
      if (d.name in out) this.err(d.pos, `The decorator @${d.name} is applied more than once`);
      const arity: Record<string, number> = { secure: 0, description: 1, allowed: 1, minLength: 1, maxLength: 1, minValue: 1, maxValue: 1, metadata: 1 };
      if (d.args.length !== arity[d.name]) this.err(d.pos, `The decorator @${d.name} expects ${arity[d.name]} argument(s), got ${d.args.length}`);
      const arg = d.args[0];
      const expect = (ok: boolean, type: string) => {
        if (!ok) this.err(d.pos, `The argument of @${d.name} must be ${type}`);
      };
      if (d.name === "description") expect(typeof arg === "string", "a string");
      if (d.name === "allowed") expect(Array.isArray(arg) && arg.length > 0, "a non-empty array");
      if (["minLength", "maxLength", "minValue", "maxValue"].includes(d.name)) expect(Number.isInteger(arg), "an integer");
      out[d.name] = d.name === "secure" ? true : arg;
    }
    return out;
  }

  parseType(what: string): BicepType {
    const t = this.peek();
    if (t.t === "str") this.err(t.pos, `Literal and union types are ${UNSUPPORTED}; use string with @allowed([...])`);
    if (t.t !== "ident") this.err(t.pos, `Expected a ${what} type (string, int, bool, object or array) at this location`);
    if (t.v === "resource") this.err(t.pos, `Resource-typed ${what}s are ${UNSUPPORTED}`);
    if (!TYPES.has(t.v)) this.err(t.pos, `The type '${t.v}' is ${UNSUPPORTED}; use string, int, bool, object or array`);
    this.next();
    if (this.isPunct("[")) this.err(this.peek().pos, `Typed arrays ('${t.v}[]') are ${UNSUPPORTED}; use array`);
    if (this.isPunct("?")) this.err(this.peek().pos, `Nullable types ('${t.v}?') are ${UNSUPPORTED}`);
    if (this.isPunct("|")) this.err(this.peek().pos, `Union types are ${UNSUPPORTED}`);
    return t.v as BicepType;
  }

  parseParam(pos: Pos, decorators: Decorator[]): ParamDecl {
    const d = this.applyDecorators(decorators, ["description", "allowed", "minLength", "maxLength", "minValue", "maxValue", "secure", "metadata"], "parameter");
    const name = this.expectIdent("a parameter name");
    const type = this.parseType("parameter");
    const p: ParamDecl = { name: name.v, type, secure: "secure" in d, pos };
    if ("secure" in d && type !== "string" && type !== "object") this.err(pos, "@secure() applies to string and object parameters only");
    if (this.isPunct("=")) {
      this.next();
      p.defaultValue = this.parseExpr();
    }
    if (typeof d.description === "string") p.description = d.description;
    if (Array.isArray(d.allowed)) p.allowed = d.allowed;
    for (const k of ["minLength", "maxLength", "minValue", "maxValue"] as const) {
      if (typeof d[k] === "number") p[k] = d[k] as number;
    }
    return p;
  }

  parseResource(pos: Pos, decorators: Decorator[]): ResourceDecl {
    const d = this.applyDecorators(decorators, ["description"], "resource");
    const symbol = this.expectIdent("a resource symbolic name");
    const typeTok = this.peek();
    if (typeTok.t !== "str" || typeTok.holes.length > 0) this.err(typeTok.pos, "Expected a resource type string 'Namespace/type@apiVersion' at this location");
    this.next();
    const full = typeTok.parts[0];
    const at = full.lastIndexOf("@");
    const type = full.slice(0, at);
    const apiVersion = full.slice(at + 1);
    if (at < 0 || !/^[A-Za-z0-9.]+(\/[A-Za-z0-9_.-]+)+$/.test(type) || !/^\d{4}-\d{2}-\d{2}(-[A-Za-z0-9]+)?$/.test(apiVersion)) {
      this.err(typeTok.pos, `The resource type '${full}' is not of the form 'Namespace/type@yyyy-mm-dd'`);
    }
    const existing = this.isIdent("existing");
    if (existing) this.next();
    this.expectPunct("=");
    const t = this.peek();
    if (t.t === "ident" && t.v === "if") this.err(t.pos, `Conditional resources ('if') are ${UNSUPPORTED}`);
    let loop: ResourceDecl["loop"];
    if (t.t === "punct" && t.v === "[") {
      if (existing) this.err(t.pos, `Loops over existing resources are ${UNSUPPORTED}`);
      this.next();
      this.skipNl();
      if (!this.isIdent("for")) this.err(this.peek().pos, `Expected 'for' after "[" in a resource declaration`);
      this.next();
      let item: string;
      let index: string | undefined;
      if (this.isPunct("(")) {
        this.next();
        item = this.expectIdent("the loop item variable").v;
        this.expectPunct(",");
        index = this.expectIdent("the loop index variable").v;
        this.expectPunct(")");
      } else {
        item = this.expectIdent("the loop item variable").v;
      }
      if (!this.isIdent("in")) this.err(this.peek().pos, "Expected 'in' in the resource loop");
      this.next();
      const iterable = this.parseExpr();
      this.expectPunct(":");
      this.skipNl();
      if (this.isIdent("if")) this.err(this.peek().pos, `Filtered loops ('if') are ${UNSUPPORTED}`);
      loop = { item, index, iterable };
    }
    if (!this.isPunct("{")) this.err(this.peek().pos, "Expected the \"{\" character at this location");
    const body = this.parsePrimary() as ObjectExpr;
    if (loop) {
      this.skipNl();
      this.expectPunct("]");
    }
    const keys = new Map(body.props.map((p) => [p.key, p]));
    if (!keys.has("name")) this.err(body.pos, `The resource '${symbol.v}' has no 'name' property`);
    if (existing) {
      for (const p of body.props) {
        if (!["name", "parent", "scope"].includes(p.key)) this.err(p.pos, `An existing resource takes only name, parent and scope; '${p.key}' is not allowed here`);
      }
    }
    if (keys.has("parent") && keys.get("parent")!.value.kind !== "ident") this.err(keys.get("parent")!.pos, "'parent' must be the symbolic name of a resource");
    if (keys.has("parent") && keys.has("scope")) this.err(keys.get("scope")!.pos, "A resource with 'parent' cannot also set 'scope'");
    const dependsOn = keys.get("dependsOn");
    if (dependsOn && (dependsOn.value.kind !== "array" || dependsOn.value.items.some((x) => x.kind !== "ident"))) {
      this.err(dependsOn.pos, "'dependsOn' must be an array of resource symbolic names");
    }
    return { symbol: symbol.v, type, apiVersion, existing, body, ...(loop ? { loop } : {}), description: d.description as string | undefined, pos };
  }

  // --- expressions

  parseExpr(): Expr {
    const cond = this.parseBinary(1);
    if (!this.isPunct("?")) return cond;
    this.next();
    this.skipNl();
    const then = this.parseExpr();
    this.skipNl();
    this.expectPunct(":");
    this.skipNl();
    const otherwise = this.parseExpr();
    return { kind: "ternary", cond, then, otherwise, pos: cond.pos };
  }

  parseBinary(minPrecedence: number): Expr {
    let left = this.parseUnary();
    for (;;) {
      const t = this.peek();
      if (t.t !== "punct") return left;
      const p = BINARY_PRECEDENCE[t.v];
      if (p === undefined || p < minPrecedence) return left;
      this.next();
      this.skipNl();
      const right = this.parseBinary(p + 1);
      left = { kind: "binary", op: t.v, left, right, pos: t.pos };
    }
  }

  parseUnary(): Expr {
    const t = this.peek();
    if (t.t === "punct" && (t.v === "!" || t.v === "-")) {
      this.next();
      const operand = this.parseUnary();
      if (t.v === "-" && operand.kind === "int") return { kind: "int", value: -operand.value, pos: t.pos };
      return { kind: "unary", op: t.v, operand, pos: t.pos };
    }
    return this.parsePostfix();
  }

  parsePostfix(): Expr {
    let e = this.parsePrimary();
    for (;;) {
      if (this.isPunct(".")) {
        const dot = this.next();
        let safe = false;
        if (this.isPunct("?")) {
          this.next();
          safe = true;
        }
        const name = this.expectIdent("a property name");
        if (this.isPunct("(")) {
          if (e.kind === "ident" && (e.name === "az" || e.name === "sys") && !safe) {
            this.next();
            e = { kind: "call", name: name.v, args: this.parseArgs(), pos: e.pos };
            continue;
          }
          this.err(name.pos, `Resource functions such as '.${name.v}()' are ${UNSUPPORTED}`);
        }
        e = { kind: "member", object: e, name: name.v, safe, pos: dot.pos };
      } else if (this.isPunct("[")) {
        const open = this.next();
        this.skipNl();
        let safe = false;
        if (this.isPunct("?")) {
          this.next();
          safe = true;
        }
        const index = this.parseExpr();
        this.skipNl();
        this.expectPunct("]");
        e = { kind: "index", object: e, index, safe, pos: open.pos };
      } else if (this.isPunct("::")) {
        this.err(this.peek().pos, `The nested resource accessor '::' is ${UNSUPPORTED}`);
      } else {
        return e;
      }
    }
  }

  parseArgs(): Expr[] {
    // after "("
    const args: Expr[] = [];
    this.skipNl();
    if (this.isPunct(")")) {
      this.next();
      return args;
    }
    for (;;) {
      args.push(this.parseExpr());
      this.skipNl();
      if (this.isPunct(",")) {
        this.next();
        this.skipNl();
        continue;
      }
      this.expectPunct(")");
      return args;
    }
  }

  parsePrimary(): Expr {
    const t = this.next();
    switch (t.t) {
      case "int":
        return { kind: "int", value: t.v, pos: t.pos };
      case "str":
        return {
          kind: "string",
          parts: t.parts,
          exprs: t.holes.map((hole) => {
            const sub = new _Parser(hole, this.file);
            const e = sub.parseExpr();
            const rest = sub.peek();
            if (rest.t !== "eof") sub.err(rest.pos, "Expected the \"}\" character to close the interpolation");
            return e;
          }),
          pos: t.pos,
        };
      case "ident": {
        if (t.v === "true" || t.v === "false") return { kind: "bool", value: t.v === "true", pos: t.pos };
        if (t.v === "null") return { kind: "null", pos: t.pos };
        if (this.isPunct("=>")) this.err(t.pos, `Lambda expressions are ${UNSUPPORTED}`);
        if (t.v === "for" || t.v === "if") this.err(t.pos, `'${t.v}' expressions are ${UNSUPPORTED}`);
        if (this.isPunct("(")) {
          this.next();
          return { kind: "call", name: t.v, args: this.parseArgs(), pos: t.pos };
        }
        return { kind: "ident", name: t.v, pos: t.pos };
      }
      case "punct":
        if (t.v === "(") {
          this.skipNl();
          const e = this.parseExpr();
          this.skipNl();
          this.expectPunct(")");
          if (this.isPunct("=>")) this.err(t.pos, `Lambda expressions are ${UNSUPPORTED}`);
          return e;
        }
        if (t.v === "{") return this.parseObject(t.pos);
        if (t.v === "[") return this.parseArray(t.pos);
        break;
    }
    this.err(t.pos, "Expected an expression at this location");
  }

  /** After a value in an object or array: a comma, new lines, or the closing character. */
  separator(close: string): void {
    if (this.isPunct(",")) {
      this.next();
      this.skipNl();
    } else if (this.peek().t === "nl") {
      this.skipNl();
    } else if (!this.isPunct(close)) {
      this.err(this.peek().pos, "Expected a new line or comma character at this location");
    }
  }

  parseObject(pos: Pos): Expr {
    const props: ObjectProp[] = [];
    const seen = new Set<string>();
    this.skipNl();
    while (!this.isPunct("}")) {
      const t = this.peek();
      if (t.t === "ident" && t.v === "resource" && this.isIdent(undefined, 1)) this.err(t.pos, `Nested resource declarations are ${UNSUPPORTED}; declare the child at the top level with 'parent:'`);
      let key: string;
      let keyExpr: Expr | undefined;
      if (t.t === "ident" || (t.t === "str" && t.holes.length === 0)) {
        key = t.t === "ident" ? t.v : t.parts[0];
        this.next();
      } else if (t.t === "str") {
        keyExpr = this.parsePrimary();
        key = t.parts.join("${...}");
      } else {
        this.err(t.pos, "Expected a property name at this location");
      }
      this.expectPunct(":");
      this.skipNl();
      const value = this.parseExpr();
      if (!keyExpr && seen.has(key.toLowerCase())) this.err(t.pos, `The property '${key}' is declared more than once in this object`);
      seen.add(key.toLowerCase());
      props.push(keyExpr ? { key, keyExpr, value, pos: t.pos } : { key, value, pos: t.pos });
      this.separator("}");
    }
    this.next();
    return { kind: "object", props, pos };
  }

  parseArray(pos: Pos): Expr {
    const items: Expr[] = [];
    this.skipNl();
    if (this.isIdent("for")) this.err(this.peek().pos, `'for' loops are ${UNSUPPORTED}`);
    while (!this.isPunct("]")) {
      items.push(this.parseExpr());
      this.separator("]");
    }
    this.next();
    return { kind: "array", items, pos };
  }
}

// ---------------------------------------------------------------------------------------------
// Functions

type Fn = (args: Value[], call: CallExpr) => Value;
interface FnSpec {
  min: number;
  max: number;
  fn: Fn;
}

/** Functions whose values depend on the deployment (implemented on the evaluator), with their [min, max] argument counts. */
const CONTEXT_FUNCTIONS: Record<string, [number, number]> = {
  resourceGroup: [0, 2],
  subscription: [0, 1],
  tenant: [0, 0],
  deployment: [0, 0],
  deployer: [0, 0],
  resourceId: [2, Infinity],
  subscriptionResourceId: [2, Infinity],
  tenantResourceId: [2, Infinity],
  extensionResourceId: [3, Infinity],
};

function _typeName(v: Value | undefined): string {
  if (v === null || v === undefined) return "Null";
  if (typeof v === "string") return "String";
  if (typeof v === "number") return Number.isInteger(v) ? "Integer" : "Float";
  if (typeof v === "boolean") return "Boolean";
  if (Array.isArray(v)) return "Array";
  return "Object";
}

function _isObject(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function _deepEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => _deepEqual(x, b[i]));
  if (_isObject(a) && _isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && _deepEqual(a[k], b[k]));
  }
  return false;
}

/** ARM's string conversion: booleans are .NET's True/False, objects and arrays compact JSON. */
function _toText(v: Value): string {
  if (v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return String(v);
  return JSON.stringify(v);
}

function _fnError(call: CallExpr, message: string): never {
  throw new _ExpressionError(call.pos, `The template function '${call.name}' is not valid: ${message}`);
}
function _str(call: CallExpr, v: Value, which = "its arguments"): string {
  if (typeof v !== "string") _fnError(call, `${which} must be of type 'String', not '${_typeName(v)}'.`);
  return v;
}
function _int(call: CallExpr, v: Value, which = "its arguments"): number {
  if (typeof v !== "number" || !Number.isInteger(v)) _fnError(call, `${which} must be of type 'Integer', not '${_typeName(v)}'.`);
  return v;
}
function _strOrArray(call: CallExpr, v: Value): string | Value[] {
  if (typeof v !== "string" && !Array.isArray(v)) _fnError(call, `expects a string or an array, not '${_typeName(v)}'.`);
  return v;
}

/**
 * Deterministic 13-character name suffix in uniqueString()'s alphabet ([a-z2-7]).
 * NOT Azure's algorithm (ARM uses a MurmurHash64 variant): the same inputs give the same
 * value here every time, but a different one than real Azure would produce.
 */
export function uniqueString(...values: string[]): string {
  const digest = createHash("sha256").update(values.join("-"), "utf8").digest();
  let bits = 0n;
  for (let i = 0; i < 9; i++) bits = (bits << 8n) | BigInt(digest[i]);
  bits >>= 7n; // 65 bits = 13 base32 characters
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "";
  for (let i = 12; i >= 0; i--) out += alphabet[Number((bits >> BigInt(5 * i)) & 31n)];
  return out;
}

/**
 * Deterministic UUID from the arguments: UUID v5 style (SHA-1 over a fixed namespace and the
 * arguments joined with '-'). Azure's guid() is v5-based too, but its exact input encoding
 * is not public, so the values are NOT the ones real Azure would produce.
 */
export function guid(...values: string[]): string {
  const namespace = Buffer.from("11fb06fb712d4ddd98c7e71bbd588830", "hex");
  const hash = createHash("sha1").update(namespace).update(values.join("-"), "utf8").digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function _union(call: CallExpr, args: Value[]): Value {
  if (args.every(Array.isArray)) {
    const out: Value[] = [];
    for (const a of args as Value[][]) for (const x of a) if (!out.some((y) => _deepEqual(x, y))) out.push(x);
    return out;
  }
  if (args.every(_isObject)) {
    const merge = (a: { [k: string]: Value }, b: { [k: string]: Value }) => {
      const out: { [k: string]: Value } = { ...a };
      for (const [k, v] of Object.entries(b)) out[k] = _isObject(out[k]) && _isObject(v) ? merge(out[k] as { [k: string]: Value }, v) : v;
      return out;
    };
    return (args as { [k: string]: Value }[]).reduce(merge, {});
  }
  _fnError(call, "expects all arguments to be arrays or all to be objects.");
}

const PURE_FUNCTIONS: Record<string, FnSpec> = {
  toLower: { min: 1, max: 1, fn: ([s], c) => _str(c, s).toLowerCase() },
  toUpper: { min: 1, max: 1, fn: ([s], c) => _str(c, s).toUpperCase() },
  trim: { min: 1, max: 1, fn: ([s], c) => _str(c, s).trim() },
  concat: {
    min: 1, max: Infinity, fn: (args, c) => {
      if (args.every(Array.isArray)) return (args as Value[][]).flat(1);
      if (args.some((a) => _isObject(a) || Array.isArray(a))) _fnError(c, "expects all arguments to be arrays, or all to be strings or integers.");
      return args.map(_toText).join("");
    },
  },
  format: {
    min: 1, max: Infinity, fn: ([f, ...rest], c) =>
      _str(c, f, "the format string").replace(/\{\{|\}\}|\{(\d+)(?:,-?\d+)?(:[^}]*)?\}/g, (m, n: string | undefined, spec: string | undefined) => {
        if (m === "{{") return "{";
        if (m === "}}") return "}";
        if (spec) throw new _ExpressionError(c.pos, `The format specifier '${spec.slice(1)}' in format() is ${UNSUPPORTED}`);
        const i = Number(n);
        if (i >= rest.length) _fnError(c, `the format string refers to argument {${i}} but only ${rest.length} argument(s) follow it.`);
        return _toText(rest[i]);
      }),
  },
  substring: {
    min: 2, max: 3, fn: ([s, start, len], c) => {
      const text = _str(c, s);
      const from = _int(c, start, "the index");
      const n = len === undefined ? text.length - from : _int(c, len, "the length");
      if (from < 0 || n < 0 || from + n > text.length) {
        throw new _ExpressionError(c.pos, `The index and length parameters must refer to a location within the string. The index parameter: '${from}', the length parameter: '${n}', the length of the string parameter: '${text.length}'.`);
      }
      return text.slice(from, from + n);
    },
  },
  take: {
    min: 2, max: 2, fn: ([x, n], c) => {
      const v = _strOrArray(c, x);
      return v.slice(0, Math.max(0, _int(c, n, "the count")));
    },
  },
  skip: {
    min: 2, max: 2, fn: ([x, n], c) => {
      const v = _strOrArray(c, x);
      return v.slice(Math.max(0, _int(c, n, "the count")));
    },
  },
  length: {
    min: 1, max: 1, fn: ([x], c) => {
      if (typeof x === "string" || Array.isArray(x)) return x.length;
      if (_isObject(x)) return Object.keys(x).length;
      _fnError(c, `expects a string, an array or an object, not '${_typeName(x)}'.`);
    },
  },
  replace: { min: 3, max: 3, fn: ([s, a, b], c) => _str(c, s).split(_str(c, a)).join(_str(c, b)) },
  split: {
    min: 2, max: 2, fn: ([s, d], c) => {
      const text = _str(c, s);
      const delims = Array.isArray(d) ? d.map((x) => _str(c, x, "the delimiters")) : [_str(c, d, "the delimiter")];
      let parts = [text];
      for (const delim of delims) parts = parts.flatMap((p) => p.split(delim));
      return parts;
    },
  },
  join: {
    min: 2, max: 2, fn: ([a, d], c) => {
      if (!Array.isArray(a)) _fnError(c, `expects an array as its first argument, not '${_typeName(a)}'.`);
      return a.map(_toText).join(_str(c, d, "the delimiter"));
    },
  },
  contains: {
    min: 2, max: 2, fn: ([container, item], c) => {
      if (typeof container === "string") return container.includes(_toText(item));
      if (Array.isArray(container)) return container.some((x) => _deepEqual(x, item));
      if (_isObject(container)) {
        const key = _toText(item).toLowerCase();
        return Object.keys(container).some((k) => k.toLowerCase() === key);
      }
      _fnError(c, `expects a string, an array or an object, not '${_typeName(container)}'.`);
    },
  },
  empty: {
    min: 1, max: 1, fn: ([x]) => x === null || x === "" || (Array.isArray(x) && x.length === 0) || (_isObject(x) && Object.keys(x).length === 0),
  },
  union: { min: 1, max: Infinity, fn: (args, c) => _union(c, args) },
  first: {
    min: 1, max: 1, fn: ([x], c) => {
      const v = _strOrArray(c, x);
      return typeof v === "string" ? v.slice(0, 1) : v.length > 0 ? v[0] : null;
    },
  },
  last: {
    min: 1, max: 1, fn: ([x], c) => {
      const v = _strOrArray(c, x);
      return typeof v === "string" ? v.slice(-1) : v.length > 0 ? v[v.length - 1] : null;
    },
  },
  string: { min: 1, max: 1, fn: ([x]) => _toText(x) },
  int: {
    min: 1, max: 1, fn: ([x], c) => {
      if (typeof x === "number" && Number.isInteger(x)) return x;
      if (typeof x === "string" && /^\s*[+-]?\d+\s*$/.test(x)) return parseInt(x, 10);
      _fnError(c, `cannot convert '${_toText(x)}' to an integer.`);
    },
  },
  bool: {
    min: 1, max: 1, fn: ([x], c) => {
      if (typeof x === "boolean") return x;
      if (typeof x === "string" && /^(true|false)$/i.test(x)) return x.toLowerCase() === "true";
      if (x === 0 || x === 1) return x === 1;
      _fnError(c, `cannot convert '${_toText(x)}' to a boolean.`);
    },
  },
  json: {
    min: 1, max: 1, fn: ([x], c) => {
      try {
        return JSON.parse(_str(c, x)) as Value;
      } catch {
        _fnError(c, "its argument is not valid JSON.");
      }
    },
  },
  startsWith: { min: 2, max: 2, fn: ([s, p], c) => _str(c, s).toLowerCase().startsWith(_str(c, p).toLowerCase()) },
  endsWith: { min: 2, max: 2, fn: ([s, p], c) => _str(c, s).toLowerCase().endsWith(_str(c, p).toLowerCase()) },
  indexOf: { min: 2, max: 2, fn: ([s, p], c) => _str(c, s).toLowerCase().indexOf(_str(c, p).toLowerCase()) },
  lastIndexOf: { min: 2, max: 2, fn: ([s, p], c) => _str(c, s).toLowerCase().lastIndexOf(_str(c, p).toLowerCase()) },
  base64: { min: 1, max: 1, fn: ([s], c) => Buffer.from(_str(c, s), "utf8").toString("base64") },
  base64ToString: { min: 1, max: 1, fn: ([s], c) => Buffer.from(_str(c, s), "base64").toString("utf8") },
  coalesce: { min: 1, max: Infinity, fn: (args) => args.find((a) => a !== null) ?? null },
  min: {
    min: 1, max: Infinity, fn: (args, c) => {
      const xs = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
      return Math.min(...xs.map((x) => _int(c, x)));
    },
  },
  max: {
    min: 1, max: Infinity, fn: (args, c) => {
      const xs = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
      return Math.max(...xs.map((x) => _int(c, x)));
    },
  },
  uniqueString: { min: 1, max: Infinity, fn: (args, c) => uniqueString(...args.map((a) => _str(c, a))) },
  guid: { min: 1, max: Infinity, fn: (args, c) => guid(...args.map((a) => _str(c, a))) },
};

const FUNCTION_ARITY = new Map<string, [number, number]>([
  ...Object.entries(PURE_FUNCTIONS).map(([name, spec]): [string, [number, number]] => [name, [spec.min, spec.max]]),
  ...Object.entries(CONTEXT_FUNCTIONS),
]);

function _arityProblem(name: string, count: number): string | undefined {
  const [min, max] = FUNCTION_ARITY.get(name)!;
  if (count >= min && count <= max) return undefined;
  const expected = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
  return `The function '${name}' expects ${expected} argument(s), got ${count}.`;
}

/** 'Microsoft.KeyVault/vaults/keys' + ['v', 'k'] -> 'Microsoft.KeyVault/vaults/v/keys/k'. */
function _typedPath(type: string, names: string[], at: Pos, what: string): string {
  const segs = type.split("/");
  if (names.length !== segs.length - 1) {
    throw new _ExpressionError(at, `The ${what} '${names.join("/")}' for type '${type}' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name.`);
  }
  let out = segs[0];
  for (let i = 1; i < segs.length; i++) out += `/${segs[i]}/${names[i - 1]}`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Static checks: names, functions, dependencies

function _walk(e: Expr, visit: (e: Expr) => void): void {
  visit(e);
  switch (e.kind) {
    case "string":
      e.exprs.forEach((x) => _walk(x, visit));
      break;
    case "object":
      e.props.forEach((p) => {
        if (p.keyExpr) _walk(p.keyExpr, visit);
        _walk(p.value, visit);
      });
      break;
    case "array":
      e.items.forEach((x) => _walk(x, visit));
      break;
    case "member":
      _walk(e.object, visit);
      break;
    case "index":
      _walk(e.object, visit);
      _walk(e.index, visit);
      break;
    case "call":
      e.args.forEach((x) => _walk(x, visit));
      break;
    case "unary":
      _walk(e.operand, visit);
      break;
    case "binary":
      _walk(e.left, visit);
      _walk(e.right, visit);
      break;
    case "ternary":
      _walk(e.cond, visit);
      _walk(e.then, visit);
      _walk(e.otherwise, visit);
      break;
  }
}

function _identifiers(e: Expr): Set<string> {
  const out = new Set<string>();
  _walk(e, (x) => {
    if (x.kind === "ident") out.add(x.name);
  });
  return out;
}

function _check(tpl: BicepTemplate): void {
  const file = tpl.fileName;
  const fail: (pos: Pos, message: string) => never = (pos, message) => {
    throw new BicepSyntaxError(file, pos, message);
  };
  const kinds = new Map<string, "param" | "var" | "resource">();
  const declare = (name: string, kind: "param" | "var" | "resource", pos: Pos) => {
    if (kinds.has(name)) fail(pos, `The identifier '${name}' is declared multiple times. Remove or rename the duplicates.`);
    kinds.set(name, kind);
  };
  tpl.params.forEach((p) => declare(p.name, "param", p.pos));
  tpl.vars.forEach((v) => declare(v.name, "var", v.pos));
  tpl.resources.forEach((r) => declare(r.symbol, "resource", r.pos));
  const outputs = new Set<string>();
  for (const o of tpl.outputs) {
    if (outputs.has(o.name)) fail(o.pos, `The output '${o.name}' is declared multiple times.`);
    outputs.add(o.name);
  }

  const checkExpr = (e: Expr, onlyParams: boolean, locals: Set<string> = new Set()) =>
    _walk(e, (x) => {
      if (x.kind === "ident") {
        if (locals.has(x.name)) return;
        const kind = kinds.get(x.name);
        if (!kind) fail(x.pos, `The name '${x.name}' does not exist in the current context.`);
        if (onlyParams && kind !== "param") fail(x.pos, `This symbol cannot be referenced here. Only other parameters can be referenced in parameter default values ('${x.name}' is a ${kind}).`);
      }
      if (x.kind === "call") {
        if (!FUNCTION_ARITY.has(x.name)) {
          const hint = [...FUNCTION_ARITY.keys()].find((f) => f.toLowerCase() === x.name.toLowerCase());
          fail(x.pos, hint
            ? `The function '${x.name}' does not exist. Did you mean '${hint}'?`
            : `The function '${x.name}' is ${UNSUPPORTED}.`);
        }
        const problem = _arityProblem(x.name, x.args.length);
        if (problem) fail(x.pos, problem);
      }
    });
  tpl.params.forEach((p) => p.defaultValue && checkExpr(p.defaultValue, true));
  tpl.vars.forEach((v) => checkExpr(v.value, false));
  tpl.outputs.forEach((o) => checkExpr(o.value, false));
  const byName = new Map(tpl.resources.map((r) => [r.symbol, r]));
  for (const r of tpl.resources) {
    if (r.loop) checkExpr(r.loop.iterable, false);
    checkExpr(r.body, false, new Set([r.loop?.item, r.loop?.index].filter((x): x is string => x !== undefined)));
    for (const p of r.body.props) {
      if (p.key === "parent") {
        const parent = byName.get((p.value as { name: string }).name);
        if (!parent) fail(p.value.pos, `'parent' must be the symbolic name of a resource declared in this file.`);
        const ok = r.type.toLowerCase().startsWith(parent.type.toLowerCase() + "/") && !r.type.slice(parent.type.length + 1).includes("/");
        if (!ok) fail(p.value.pos, `The resource type '${r.type}' is not a child of '${parent.type}', the type of its parent '${parent.symbol}'.`);
      }
      if (p.key === "dependsOn" && p.value.kind === "array") {
        for (const d of p.value.items) {
          if (d.kind === "ident" && !byName.has(d.name)) fail(d.pos, `'dependsOn' entries must be resource symbolic names; '${d.name}' is not a resource.`);
        }
      }
    }
  }
  _deploymentOrder(tpl); // cycles are compile errors
}

/** Resources in the order to deploy them: dependencies first, otherwise in declaration order. */
function _deploymentOrder(tpl: BicepTemplate): ResourceDecl[] {
  const resources = new Map(tpl.resources.map((r) => [r.symbol, r]));
  const vars = new Map(tpl.vars.map((v) => [v.name, v]));
  const resourcesOfVar = new Map<string, Set<string>>();
  const inProgress = new Set<string>();
  const varResources = (name: string): Set<string> => {
    if (!resourcesOfVar.has(name)) {
      if (inProgress.has(name)) throw new BicepSyntaxError(tpl.fileName, vars.get(name)!.pos, `The variable '${name}' is involved in a cycle.`);
      inProgress.add(name);
      resourcesOfVar.set(name, resourcesReferencedBy(vars.get(name)!.value));
      inProgress.delete(name);
    }
    return resourcesOfVar.get(name)!;
  };
  /** Resources an expression depends on, directly or through variables. */
  const resourcesReferencedBy = (e: Expr): Set<string> => {
    const out = new Set<string>();
    for (const name of _identifiers(e)) {
      if (resources.has(name)) out.add(name);
      else if (vars.has(name)) varResources(name).forEach((r) => out.add(r));
    }
    return out;
  };
  tpl.vars.forEach((v) => varResources(v.name));
  const deps = new Map<string, Set<string>>();
  for (const r of tpl.resources) {
    const d = resourcesReferencedBy(r.body);
    if (r.loop) resourcesReferencedBy(r.loop.iterable).forEach((x) => d.add(x));
    for (const local of [r.loop?.item, r.loop?.index]) if (local) d.delete(local);
    if (d.has(r.symbol)) throw new BicepSyntaxError(tpl.fileName, r.pos, `The resource '${r.symbol}' refers to itself.`);
    deps.set(r.symbol, d);
  }
  const order: ResourceDecl[] = [];
  const done = new Set<string>();
  while (order.length < tpl.resources.length) {
    const ready = tpl.resources.find((r) => !done.has(r.symbol) && [...deps.get(r.symbol)!].every((d) => done.has(d)));
    if (!ready) {
      const stuck = tpl.resources.filter((r) => !done.has(r.symbol));
      throw new BicepSyntaxError(tpl.fileName, stuck[0].pos, `The resources ${stuck.map((r) => `'${r.symbol}'`).join(", ")} are involved in a dependency cycle.`);
    }
    order.push(ready);
    done.add(ready.symbol);
  }
  return order;
}

/** Parse a Bicep file into its declarations; throws BicepSyntaxError (with file:line:column) on anything outside the subset. */
export function parseBicep(source: string, fileName: string): BicepTemplate {
  const tokens = new _Lexer(source, fileName).tokenize();
  const tpl = new _Parser(tokens, fileName).parseProgram();
  _check(tpl);
  return tpl;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

const ARM_TYPE: Record<BicepType, string> = { string: "String", int: "Int", bool: "Bool", object: "Object", array: "Array" };
const PARAMETER_FILE_HELP = "Please see https://aka.ms/arm-create-parameter-file for usage details.";

function _hasType(v: unknown, type: BicepType): boolean {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "bool":
      return typeof v === "boolean";
    case "object":
      return _isObject(v as Value);
    case "array":
      return Array.isArray(v);
  }
}

function _invalidTemplate(inner: string, p?: ParamDecl): DeploymentError {
  const error: ArmError = { code: "InvalidTemplate", message: `Deployment template validation failed: '${inner}'.` };
  if (p) {
    error.additionalInfo = [{ type: "TemplateViolation", info: { lineNumber: p.pos.line, linePosition: p.pos.column, path: `properties.template.parameters.${p.name}` } }];
  }
  return new DeploymentError(error);
}

/** What a failed putResource/getResource reported, as an ARM error detail. */
function _errorDetail(e: unknown): ArmError {
  const err = e as { armError?: ArmError; code?: unknown; message?: unknown } | null;
  if (err && typeof err === "object") {
    if (err.armError && typeof err.armError.code === "string") return err.armError;
    if (typeof err.code === "string" && typeof err.message === "string") return { code: err.code, message: err.message };
  }
  return { code: "ResourceDeploymentFailure", message: String((err as { message?: unknown })?.message ?? e) };
}

class _Evaluator {
  tpl: BicepTemplate;
  opts: DeployBicepOptions;
  provided = new Map<string, unknown>();
  params = new Map<string, Value>();
  paramsResolving = new Set<string>();
  vars = new Map<string, Value>();
  varsResolving = new Set<string>();
  resources = new Map<string, Value>();
  /** Loop variables of the resource loop being planned. */
  locals = new Map<string, Value>();
  functions: Record<string, FnSpec>;

  constructor(tpl: BicepTemplate, opts: DeployBicepOptions) {
    this.tpl = tpl;
    this.opts = opts;
    this.functions = { ...PURE_FUNCTIONS, ...this.contextFunctions() };
  }

  contextFunctions(): Record<string, FnSpec> {
    const ctx = this.opts.context;
    const sub = `/subscriptions/${ctx.subscriptionId}`;
    const typedId = (prefix: string, args: Value[], c: CallExpr) => {
      const [type, ...names] = args.map((a) => _str(c, a));
      return `${prefix}/providers/${_typedPath(type, names, c.pos, "resource name")}`;
    };
    return {
      resourceGroup: {
        min: 0, max: 2, fn: (args, c): Value => {
          if (args.length === 0) {
            return { id: ctx.resourceGroup.id, name: ctx.resourceGroup.name, type: "Microsoft.Resources/resourceGroups", location: ctx.resourceGroup.location, properties: { provisioningState: "Succeeded" } };
          }
          const [s, name] = args.length === 2 ? args.map((a) => _str(c, a)) : [ctx.subscriptionId, _str(c, args[0])];
          return { id: `/subscriptions/${s}/resourceGroups/${name}`, name, type: "Microsoft.Resources/resourceGroups" };
        },
      },
      subscription: {
        min: 0, max: 1, fn: (args, c) => {
          const id = args.length ? _str(c, args[0]) : ctx.subscriptionId;
          return { id: `/subscriptions/${id}`, subscriptionId: id, tenantId: ctx.tenantId };
        },
      },
      tenant: { min: 0, max: 0, fn: () => ({ tenantId: ctx.tenantId }) },
      deployment: { min: 0, max: 0, fn: () => ({ name: ctx.deploymentName, properties: {} }) },
      deployer: { min: 0, max: 0, fn: () => ({ objectId: ctx.deployer.objectId, tenantId: ctx.deployer.tenantId }) },
      resourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => _str(c, a));
          const typeAt = strs.findIndex((s) => s.includes("/"));
          if (typeAt < 0 || typeAt > 2) _fnError(c, "expects a resource type such as 'Microsoft.Storage/storageAccounts'.");
          const [s, rg] = typeAt === 2 ? strs : typeAt === 1 ? [ctx.subscriptionId, strs[0]] : [ctx.subscriptionId, ctx.resourceGroup.name];
          return typedId(`/subscriptions/${s}/resourceGroups/${rg}`, strs.slice(typeAt), c);
        },
      },
      subscriptionResourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => _str(c, a));
          const withSub = !strs[0].includes("/");
          return typedId(withSub ? `/subscriptions/${strs[0]}` : sub, withSub ? strs.slice(1) : strs, c);
        },
      },
      tenantResourceId: { min: 2, max: Infinity, fn: (args, c) => typedId("", args, c) },
      extensionResourceId: {
        min: 3, max: Infinity, fn: (args, c) => typedId(_str(c, args[0], "the resource id"), args.slice(1), c),
      },
    };
  }

  // --- parameters

  validateParameters(provided: Record<string, unknown>): Record<string, { type: string; value?: unknown }> {
    const decls = new Map(this.tpl.params.map((p) => [p.name.toLowerCase(), p]));
    const unknown = Object.keys(provided).filter((k) => !decls.has(k.toLowerCase()));
    if (unknown.length > 0) {
      throw _invalidTemplate(`The template parameters '${unknown.join(", ")}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '${this.tpl.params.map((p) => p.name).join(", ")}'. Please see https://aka.ms/arm-pass-parameter-values for usage details.`);
    }
    this.provided = new Map(Object.entries(provided).map(([k, v]) => [k.toLowerCase(), v]));
    const record: Record<string, { type: string; value?: unknown }> = {};
    for (const p of this.tpl.params) {
      const value = this.param(p);
      record[p.name] = p.secure ? { type: p.type === "object" ? "SecureObject" : "SecureString" } : { type: ARM_TYPE[p.type], value };
    }
    return record;
  }

  param(p: ParamDecl): Value {
    if (this.params.has(p.name)) return this.params.get(p.name)!;
    if (this.paramsResolving.has(p.name)) throw _invalidTemplate(`The template parameter '${p.name}' is involved in a cycle of default values.`, p);
    this.paramsResolving.add(p.name);
    let value: Value;
    const key = p.name.toLowerCase();
    if (this.provided.has(key)) {
      value = this.provided.get(key) as Value;
      if (!_hasType(value, p.type)) {
        throw _invalidTemplate(`Template parameter '${p.name}' was provided an invalid value. Expected a value of type '${p.type === "string" ? "String, Uri" : ARM_TYPE[p.type]}', but received a value of type '${_typeName(value)}'. ${PARAMETER_FILE_HELP}`, p);
      }
    } else if (p.defaultValue) {
      try {
        value = this.evaluate(p.defaultValue);
      } catch (e) {
        if (e instanceof _ExpressionError) throw _invalidTemplate(`The template parameter '${p.name}' at line '${e.pos.line}' and column '${e.pos.column}' is not valid: ${e.message}`, p);
        throw e;
      }
    } else {
      throw _invalidTemplate(`The value for the template parameter '${p.name}' at line '${p.pos.line}' and column '${p.pos.column}' is not provided. ${PARAMETER_FILE_HELP}`, p);
    }
    // Messages for @allowed follow ARM's; the length/value bound messages are close paraphrases.
    const notValid = `The provided value for the template parameter '${p.name}' is not valid.`;
    if (p.allowed && !p.allowed.some((a) => _deepEqual(a, value))) {
      throw _invalidTemplate(`${notValid} The value '${_toText(value)}' is not part of the allowed value(s): '${p.allowed.map(_toText).join(",")}'.`, p);
    }
    const length = typeof value === "string" || Array.isArray(value) ? value.length : undefined;
    if (length !== undefined && p.minLength !== undefined && length < p.minLength) {
      throw _invalidTemplate(`${notValid} Length of the value should be greater than or equal to '${p.minLength}'.`, p);
    }
    if (length !== undefined && p.maxLength !== undefined && length > p.maxLength) {
      throw _invalidTemplate(`${notValid} Length of the value should be less than or equal to '${p.maxLength}'.`, p);
    }
    if (typeof value === "number" && p.minValue !== undefined && value < p.minValue) {
      throw _invalidTemplate(`${notValid} The value should be greater than or equal to '${p.minValue}'.`, p);
    }
    if (typeof value === "number" && p.maxValue !== undefined && value > p.maxValue) {
      throw _invalidTemplate(`${notValid} The value should be less than or equal to '${p.maxValue}'.`, p);
    }
    this.paramsResolving.delete(p.name);
    this.params.set(p.name, value);
    return value;
  }

  // --- expressions

  lookup(name: string, pos: Pos): Value {
    if (this.locals.has(name)) return this.locals.get(name)!;
    const p = this.tpl.params.find((x) => x.name === name);
    if (p) return this.param(p);
    const v = this.tpl.vars.find((x) => x.name === name);
    if (v) {
      if (this.vars.has(name)) return this.vars.get(name)!;
      if (this.varsResolving.has(name)) throw new _ExpressionError(pos, `The variable '${name}' is involved in a cycle.`);
      this.varsResolving.add(name);
      const value = this.evaluate(v.value);
      this.varsResolving.delete(name);
      this.vars.set(name, value);
      return value;
    }
    if (this.resources.has(name)) return this.resources.get(name)!;
    // The deployment order puts every resource before its dependants, so this means a bug here.
    throw new _ExpressionError(pos, `The resource '${name}' is referenced before it was deployed.`);
  }

  evaluate(e: Expr): Value {
    switch (e.kind) {
      case "string":
        return e.parts.reduce((acc, part, i) => acc + part + (i < e.exprs.length ? _toText(this.evaluate(e.exprs[i])) : ""), "");
      case "int":
      case "bool":
        return e.value;
      case "null":
        return null;
      case "ident":
        return this.lookup(e.name, e.pos);
      case "object":
        return Object.fromEntries(e.props.map((p) => [p.keyExpr ? _toText(this.evaluate(p.keyExpr)) : p.key, this.evaluate(p.value)]));
      case "array":
        return e.items.map((x) => this.evaluate(x));
      case "member": {
        const obj = this.evaluate(e.object);
        return this.property(obj, e.name, e.safe, e.pos);
      }
      case "index": {
        const obj = this.evaluate(e.object);
        const index = this.evaluate(e.index);
        if (Array.isArray(obj) && typeof index === "number" && Number.isInteger(index)) {
          if (index >= 0 && index < obj.length) return obj[index];
          if (e.safe) return null;
          throw new _ExpressionError(e.pos, `The language expression property array index '${index}' is out of bounds.`);
        }
        if (_isObject(obj) && typeof index === "string") return this.property(obj, index, e.safe, e.pos);
        if (obj === null && e.safe) return null;
        throw new _ExpressionError(e.pos, `Cannot index a value of type '${_typeName(obj)}' with a value of type '${_typeName(index)}'.`);
      }
      case "call":
        return this.call(e);
      case "unary": {
        const v = this.evaluate(e.operand);
        if (e.op === "!" && typeof v === "boolean") return !v;
        if (e.op === "-" && typeof v === "number") return -v;
        throw new _ExpressionError(e.pos, `Cannot apply operator '${e.op}' to an operand of type '${_typeName(v)}'.`);
      }
      case "binary":
        return this.binary(e.op, e.left, e.right, e.pos);
      case "ternary": {
        const cond = this.evaluate(e.cond);
        if (typeof cond !== "boolean") throw new _ExpressionError(e.cond.pos, `The condition of '? :' must be of type 'Boolean', not '${_typeName(cond)}'.`);
        return cond ? this.evaluate(e.then) : this.evaluate(e.otherwise);
      }
    }
  }

  /** ARM looks properties up case-insensitively. */
  property(obj: Value, name: string, safe: boolean, pos: Pos): Value {
    if (_isObject(obj)) {
      if (Object.hasOwn(obj, name)) return obj[name];
      const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
      if (key !== undefined) return obj[key];
      if (safe) return null;
      throw new _ExpressionError(pos, `The language expression property '${name}' doesn't exist, available properties are '${Object.keys(obj).join(", ")}'.`);
    }
    if (safe && obj === null) return null;
    throw new _ExpressionError(pos, `The language expression property '${name}' can't be evaluated, property name must be a string and the value must be an object (it is of type '${_typeName(obj)}').`);
  }

  binary(op: string, l: Expr, r: Expr, pos: Pos): Value {
    const left = this.evaluate(l);
    // Short-circuit like ARM's and()/or()/coalesce().
    if (op === "&&" || op === "||") {
      if (typeof left !== "boolean") throw new _ExpressionError(pos, `Cannot apply operator '${op}' to an operand of type '${_typeName(left)}'.`);
      if (op === "&&" ? !left : left) return left;
      const right = this.evaluate(r);
      if (typeof right !== "boolean") throw new _ExpressionError(pos, `Cannot apply operator '${op}' to an operand of type '${_typeName(right)}'.`);
      return right;
    }
    if (op === "??") return left !== null ? left : this.evaluate(r);
    const right = this.evaluate(r);
    const mismatch = (): never => {
      const hint = op === "+" && (typeof left === "string" || typeof right === "string") ? " Use string interpolation instead." : "";
      throw new _ExpressionError(pos, `Cannot apply operator '${op}' to operands of type '${_typeName(left)}' and '${_typeName(right)}'.${hint}`);
    };
    switch (op) {
      case "==":
        return _deepEqual(left, right);
      case "!=":
        return !_deepEqual(left, right);
      case "=~":
      case "!~":
        if (typeof left !== "string" || typeof right !== "string") mismatch();
        return ((left as string).toLowerCase() === (right as string).toLowerCase()) === (op === "=~");
    }
    if (typeof left !== "number" || typeof right !== "number") mismatch();
    const a = left as number;
    const b = right as number;
    switch (op) {
      case "<":
        return a < b;
      case "<=":
        return a <= b;
      case ">":
        return a > b;
      case ">=":
        return a >= b;
      case "+":
        return a + b;
      case "-":
        return a - b;
      case "*":
        return a * b;
      case "/":
      case "%":
        if (b === 0) throw new _ExpressionError(pos, "Attempted to divide by zero.");
        return op === "/" ? Math.trunc(a / b) : a % b;
    }
    throw new _ExpressionError(pos, `The operator '${op}' is ${UNSUPPORTED}.`);
  }

  call(c: CallExpr): Value {
    const spec = this.functions[c.name];
    if (!spec) throw new BicepSyntaxError(this.tpl.fileName, c.pos, `The function '${c.name}' is ${UNSUPPORTED}.`);
    const problem = _arityProblem(c.name, c.args.length);
    if (problem) throw new BicepSyntaxError(this.tpl.fileName, c.pos, problem);
    return spec.fn(c.args.map((a) => this.evaluate(a)), c);
  }

  // --- resources

  /** The resource's id, its declared name and the body to PUT. */
  plan(r: ResourceDecl): { id: string; name: string; body: Record<string, unknown> } {
    const prop = (key: string) => r.body.props.find((p) => p.key === key);
    const nameProp = prop("name")!;
    const name = this.evaluate(nameProp.value);
    if (typeof name !== "string" || name === "") throw new _ExpressionError(nameProp.pos, `The resource name must be a non-empty string, not '${_toText(name)}'.`);
    const rg = this.opts.context.resourceGroup.id;
    let id: string;
    const parent = prop("parent");
    const scope = prop("scope");
    if (parent) {
      const parentSymbol = (parent.value as { name: string }).name;
      const parentId = (this.resources.get(parentSymbol) as { id: string }).id;
      const segment = r.type.split("/").pop()!;
      if (name.includes("/")) throw new _ExpressionError(nameProp.pos, `The name of a resource with 'parent' must be a single segment, not '${name}'.`);
      id = `${parentId}/${segment}/${name}`;
    } else if (scope) {
      const isResource = scope.value.kind === "ident" && this.tpl.resources.some((x) => x.symbol === (scope.value as { name: string }).name);
      const target = this.evaluate(scope.value);
      const targetId = _isObject(target) && typeof target.id === "string" ? target.id : undefined;
      if (!targetId) throw new _ExpressionError(scope.pos, "'scope' must be a resource or resourceGroup().");
      if (isResource) {
        // Extension resource (role assignments, locks, ...): lives under the scope's id.
        id = `${targetId}/providers/${_typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
      } else if (/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+$/i.test(targetId) && (r.existing || targetId.toLowerCase() === rg.toLowerCase())) {
        id = `${targetId}/providers/${_typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
      } else {
        throw new BicepSyntaxError(this.tpl.fileName, scope.pos, `Deploying to a scope other than this resource group (here '${targetId}') needs a module, which is ${UNSUPPORTED}.`);
      }
    } else {
      id = `${rg}/providers/${_typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
    }
    const body: Record<string, unknown> = {};
    for (const p of r.body.props) {
      if (p.keyExpr) body[_toText(this.evaluate(p.keyExpr))] = this.evaluate(p.value);
      else if (!["name", "parent", "scope", "dependsOn"].includes(p.key)) body[p.key] = this.evaluate(p.value);
    }
    return { id, name, body };
  }
}

/**
 * Deploy a Bicep file into a resource group: validate the parameters, put the resources in
 * dependency order through `putResource`, evaluate the outputs.
 * Throws BicepSyntaxError for source outside the subset, DeploymentError (ARM's code and
 * message: InvalidTemplate, DeploymentFailed, DeploymentOutputEvaluationFailed) otherwise.
 */
export async function deployBicep(opts: DeployBicepOptions): Promise<DeployBicepResult> {
  const tpl = parseBicep(opts.source, opts.fileName);
  const ev = new _Evaluator(tpl, opts);
  const parameters = ev.validateParameters(opts.parameters);
  const ctx = opts.context;
  const deploymentId = `${ctx.resourceGroup.id}/providers/Microsoft.Resources/deployments/${ctx.deploymentName}`;
  const resourceIds: string[] = [];
  const failed = (details: ArmError[]) =>
    new DeploymentError({
      code: "DeploymentFailed",
      target: deploymentId,
      message: "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
      details,
    }, [...resourceIds]);

  const templateError = (r: ResourceDecl, e: _ExpressionError) =>
    failed([{ code: "InvalidTemplate", message: `Unable to process template language expressions for resource '${r.symbol}' at line '${e.pos.line}' and column '${e.pos.column}'. '${e.message}'` }]);
  /** Plans and puts (or reads) one resource; returns its value for later references. */
  const deployOne = async (r: ResourceDecl): Promise<Value> => {
    let plan: { id: string; name: string; body: Record<string, unknown> };
    try {
      plan = ev.plan(r);
    } catch (e) {
      if (!(e instanceof _ExpressionError)) throw e;
      throw templateError(r, e);
    }
    let returned: Record<string, unknown>;
    try {
      returned = r.existing ? await opts.getResource(plan.id, r.apiVersion) : await opts.putResource(plan.id, r.apiVersion, plan.body);
    } catch (e) {
      throw failed([_errorDetail(e)]);
    }
    if (!r.existing) resourceIds.push(plan.id);
    // id, name, type and apiVersion are what the template declares (compile-time in Bicep);
    // everything else is what the provider returned (reference() in ARM).
    return { ...(returned as { [k: string]: Value }), id: plan.id, name: plan.name, type: r.type, apiVersion: r.apiVersion };
  };

  for (const r of _deploymentOrder(tpl)) {
    if (!r.loop) {
      ev.resources.set(r.symbol, await deployOne(r));
      continue;
    }
    // A resource loop: one resource per element, in order; the symbol then stands for the array.
    let items: Value;
    try {
      items = ev.evaluate(r.loop.iterable);
    } catch (e) {
      if (!(e instanceof _ExpressionError)) throw e;
      throw templateError(r, e);
    }
    if (!Array.isArray(items)) {
      throw templateError(r, new _ExpressionError(r.loop.iterable.pos, `The loop expression must be an array, not a value of type '${_typeName(items)}'.`));
    }
    const values: Value[] = [];
    for (let i = 0; i < items.length; i++) {
      ev.locals = new Map([[r.loop.item, items[i]], ...(r.loop.index ? [[r.loop.index, i] as [string, Value]] : [])]);
      try {
        values.push(await deployOne(r));
      } finally {
        ev.locals = new Map();
      }
    }
    ev.resources.set(r.symbol, values);
  }

  const outputs: Record<string, { type: string; value: unknown }> = {};
  for (const o of tpl.outputs) {
    const outputFailed = (message: string) =>
      new DeploymentError({
        code: "DeploymentOutputEvaluationFailed",
        message: `Unable to evaluate template outputs: '${o.name}'. Please see error details and deployment operations. Please see https://aka.ms/arm-common-errors for usage details.`,
        details: [{ code: "DeploymentOutputEvaluationFailed", target: o.name, message: `The template output '${o.name}' is not valid: ${message}` }],
      }, [...resourceIds]);
    let value: Value;
    try {
      value = ev.evaluate(o.value);
    } catch (e) {
      if (!(e instanceof _ExpressionError)) throw e;
      throw outputFailed(e.message);
    }
    if (!_hasType(value, o.type)) throw outputFailed(`Expected a value of type '${ARM_TYPE[o.type]}', but received a value of type '${_typeName(value)}'.`);
    outputs[o.name] = o.secure ? { type: `Secure${ARM_TYPE[o.type]}`, value: null } : { type: ARM_TYPE[o.type], value };
  }
  return { outputs, resourceIds, parameters };
}
