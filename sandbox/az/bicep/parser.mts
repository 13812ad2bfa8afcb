// The Bicep parser: tokens to declarations (targetScope, metadata, param with decorators, var,
// resource with existing / parent / scope / dependsOn / resource loops, output) and expressions
// by precedence. What the subset does not support is refused here, at its line and column.
import { BicepSyntaxError, UNSUPPORTED } from "./errors.mts";
import type { Tok } from "./lexer.mts";
import type { BicepTemplate, BicepType, Expr, ObjectExpr, ObjectProp, ParamDecl, Pos, ResourceDecl, Value } from "./types.mts";

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
  import: "Import statements are",
  type: "User-defined types are",
  func: "User-defined functions are",
  extension: "Extensions are",
  provider: "Providers are",
  using: "'using' declarations are",
  assert: "Assertions are",
};
/** The api-version Bicep gives the nested deployment of a module. */
export const MODULE_API_VERSION = "2022-09-01";
type Decorator = { name: string; args: Value[]; pos: Pos };

export class Parser {
  toks: Tok[];
  i = 0;
  file: string;
  /** Nested child resources parsed inside the current top-level resource (children first). */
  nested: ResourceDecl[] = [];

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
        case "module":
          tpl.resources.push(this.parseModule(kw.pos, decorators));
          break;
        case "resource":
          tpl.resources.push(this.parseResource(kw.pos, decorators));
          // Nested child declarations, parents before children.
          tpl.resources.push(...this.nested.splice(0).reverse());
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
    this.err(e.pos, `Arguments of ${where} must be constant values in the sandbox's Bicep compiler`);
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

  /**
   * `resource sym 'type@version' = {...}`; inside a resource body (`parent` given) the type may
   * be the child's own segment ('blobServices@2025-06-01'), and the declaration gets an implicit
   * `parent:`.
   */
  parseResource(pos: Pos, decorators: Decorator[], parent?: { symbol: string; type: string; apiVersion: string }): ResourceDecl {
    const d = this.applyDecorators(decorators, ["description"], "resource");
    const symbol = this.expectIdent("a resource symbolic name");
    const typeTok = this.peek();
    if (typeTok.t !== "str" || typeTok.holes.length > 0) this.err(typeTok.pos, "Expected a resource type string 'Namespace/type@apiVersion' at this location");
    this.next();
    let full = typeTok.parts[0];
    if (parent && !full.split("/")[0].includes(".")) {
      // A nested child names its own type segment; without '@version' it takes the parent's.
      if (!full.includes("@")) full = `${full}@${parent.apiVersion}`;
      if (full.slice(0, full.lastIndexOf("@")).includes("/")) this.err(typeTok.pos, `The nested resource type '${full}' must be a single segment (the child's type under '${parent.type}')`);
      full = `${parent.type}/${full}`;
    }
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
    let condition: Expr | undefined;
    if (t.t === "ident" && t.v === "if") {
      if (existing) this.err(t.pos, `Conditions on existing resources are ${UNSUPPORTED}`);
      this.next();
      this.expectPunct("(");
      condition = this.parseExpr();
      this.expectPunct(")");
    }
    let loop: ResourceDecl["loop"];
    if (!condition && t.t === "punct" && t.v === "[") {
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
    const open = this.next();
    const body = this.parseObject(open.pos, existing || loop ? undefined : { symbol: symbol.v, type, apiVersion }) as ObjectExpr;
    if (parent) {
      if (body.props.some((p) => p.key === "parent" || p.key === "scope")) this.err(body.pos, "A nested resource cannot set 'parent' or 'scope'; its parent is the resource it is declared in");
      body.props.unshift({ key: "parent", value: { kind: "ident", name: parent.symbol, pos }, pos });
    }
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
    return { symbol: symbol.v, type, apiVersion, existing, body, ...(loop ? { loop } : {}), ...(condition ? { condition } : {}), description: d.description as string | undefined, pos };
  }

  /**
   * `module sym 'relative/path.bicep' = { name: …, params: {…}, dependsOn: […] }`: compiled as
   * Bicep does, to a nested deployment (Microsoft.Resources/deployments, inner expression scope)
   * in the same resource group. The module file is read and parsed by parseBicep (evaluate.mts).
   */
  parseModule(pos: Pos, decorators: Decorator[]): ResourceDecl {
    const d = this.applyDecorators(decorators, ["description"], "module");
    const symbol = this.expectIdent("a module symbolic name");
    const pathTok = this.peek();
    if (pathTok.t !== "str" || pathTok.holes.length > 0) this.err(pathTok.pos, "Expected a module path string ('relative/path.bicep') at this location");
    this.next();
    const path = pathTok.parts[0];
    if (/^(br|ts)[:/]/.test(path)) this.err(pathTok.pos, `Registry and template spec modules ('${path}') are ${UNSUPPORTED}; use a relative path to a .bicep file`);
    if (!path.toLowerCase().endsWith(".bicep")) this.err(pathTok.pos, `The module path '${path}' must name a .bicep file (JSON modules are ${UNSUPPORTED})`);
    this.expectPunct("=");
    const t = this.peek();
    if (t.t === "ident" && t.v === "if") this.err(t.pos, `Conditions on modules are ${UNSUPPORTED}`);
    if (t.t === "punct" && t.v === "[") this.err(t.pos, `Module loops are ${UNSUPPORTED}`);
    if (!this.isPunct("{")) this.err(this.peek().pos, "Expected the \"{\" character at this location");
    const open = this.next();
    const body = this.parseObject(open.pos, undefined) as ObjectExpr;
    const keys = new Map(body.props.map((p) => [p.key, p]));
    if (!keys.has("name")) this.err(body.pos, `The module '${symbol.v}' has no 'name' property (the nested deployment's name)`);
    for (const p of body.props) {
      if (p.keyExpr || !["name", "params", "dependsOn"].includes(p.key)) {
        this.err(p.pos, p.key === "scope"
          ? `Module scopes are ${UNSUPPORTED}: a module deploys into the same resource group`
          : `A module takes only name, params and dependsOn in the sandbox's Bicep compiler; '${p.key}' is ${UNSUPPORTED}`);
      }
    }
    const params = keys.get("params");
    if (params && (params.value.kind !== "object" || params.value.props.some((x) => x.keyExpr))) this.err(params.pos, "'params' must be an object with literal parameter names");
    const dependsOn = keys.get("dependsOn");
    if (dependsOn && (dependsOn.value.kind !== "array" || dependsOn.value.items.some((x) => x.kind !== "ident"))) {
      this.err(dependsOn.pos, "'dependsOn' must be an array of resource symbolic names");
    }
    return {
      symbol: symbol.v, type: "Microsoft.Resources/deployments", apiVersion: MODULE_API_VERSION, existing: false, body,
      module: { path, pos: pathTok.pos }, description: d.description as string | undefined, pos,
    };
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
            const sub = new Parser(hole, this.file);
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

  /** `{ ... }`; `owner` = the resource whose body this is (nested `resource` declarations allowed). */
  parseObject(pos: Pos, owner?: { symbol: string; type: string; apiVersion: string }): Expr {
    const props: ObjectProp[] = [];
    const seen = new Set<string>();
    this.skipNl();
    while (!this.isPunct("}")) {
      const t = this.peek();
      if (t.t === "ident" && t.v === "resource" && this.isIdent(undefined, 1)) {
        if (!owner) this.err(t.pos, `Nested resource declarations are ${UNSUPPORTED} here (only directly in the body of a resource that is not 'existing' and not a loop)`);
        this.next();
        this.nested.push(this.parseResource(t.pos, [], owner));
        this.skipNl();
        continue;
      }
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
