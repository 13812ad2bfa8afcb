/**
 * The Bicep subset compiled to an ARM JSON template, as `bicep build` does: what the az stand-in
 * sends to ARM (`properties.template`), where the ARM emulator's template engine
 * (sandbox/services/arm/template/engine.mts) validates and deploys it.
 *
 * Output follows the Bicep compiler's non-symbolic form: `parameters` (type, defaultValue,
 * allowedValues, bounds, metadata.description), `variables`, a `resources` array with full
 * types and names ("vault/key" for children), `dependsOn` as resourceId() expressions (copy
 * loops by name), resource loops as `copy` with `copyIndex()`, extension resources with
 * `scope`, and `outputs`. Expressions become ARM's: interpolation → format(), operators →
 * equals()/not()/and()/or()/add()/…/coalesce(), `? :` → if(), `a.?b` → tryGet(), symbol
 * references → resourceId() (`.id`), the name expression (`.name`), reference(id, apiVersion)
 * (`.properties…`) or reference(id, apiVersion, 'full') (anything else).
 * A module becomes a nested deployment (Microsoft.Resources/deployments, inner expression scope,
 * its compiled template inline, `params` as `parameters: {p: {value}}`); `m.outputs.x` becomes
 * reference(resourceId('Microsoft.Resources/deployments', name), apiVersion).outputs.x.value.
 * What it cannot express (a loop resource referenced from outside its loop) is a
 * BicepSyntaxError with line and column.
 */
import { resourceDependencies } from "./checks.mts";
import { BicepSyntaxError, UNSUPPORTED } from "./errors.mts";
import type { BicepTemplate, Expr, ParamDecl, ResourceDecl, Value } from "./types.mts";

type Json = Value;

const BINARY: Record<string, string> = {
  "==": "equals", "<": "less", "<=": "lessOrEquals", ">": "greater", ">=": "greaterOrEquals",
  "+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&&": "and", "||": "or", "??": "coalesce",
};

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
/** A JSON string that starts with "[" is an expression in ARM; a literal one is escaped as "[[". */
const literal = (s: string) => (s.startsWith("[") ? `[${s}` : s);

class Compiler {
  tpl: BicepTemplate;
  resources: Map<string, ResourceDecl>;
  params: Map<string, ParamDecl>;
  vars: Set<string>;
  varResources: (name: string) => Set<string>;
  deps: Map<string, Set<string>>;
  /** The loop being compiled: its symbol, item and index names, iterable. */
  loop?: { symbol: string; item: string; index?: string; iterable: Expr };

  constructor(tpl: BicepTemplate) {
    this.tpl = tpl;
    this.resources = new Map(tpl.resources.map((r) => [r.symbol, r]));
    this.params = new Map(tpl.params.map((p) => [p.name, p]));
    this.vars = new Set(tpl.vars.map((v) => v.name));
    const d = resourceDependencies(tpl);
    this.varResources = d.varResources;
    this.deps = d.deps;
  }

  err(e: { pos: { line: number; column: number } }, message: string): never {
    throw new BicepSyntaxError(this.tpl.fileName, e.pos, message);
  }

  // ---- resource symbols

  prop(r: ResourceDecl, key: string) {
    return r.body.props.find((p) => p.key === key);
  }

  checkLoopRef(r: ResourceDecl, at: Expr) {
    if (r.loop && this.loop?.symbol !== r.symbol) {
      this.err(at, `Referencing the resource loop '${r.symbol}' from outside its loop (a collection of resources) is ${UNSUPPORTED}.`);
    }
  }

  /** `sym.name`: the declared name (for a child, its own segment). */
  nameExpr(r: ResourceDecl): string {
    return this.expr(this.prop(r, "name")!.value);
  }

  /** The full name ARM wants: "parent/child". */
  fullNameExpr(r: ResourceDecl): string {
    const parent = this.parentOf(r);
    return parent ? `format('{0}/{1}', ${this.fullNameExpr(parent)}, ${this.nameExpr(r)})` : this.nameExpr(r);
  }

  parentOf(r: ResourceDecl): ResourceDecl | undefined {
    const p = this.prop(r, "parent");
    return p ? this.resources.get((p.value as { name: string }).name) : undefined;
  }

  /** The resource the `scope` property names (extension resources), if any. */
  scopeResource(r: ResourceDecl): ResourceDecl | undefined {
    const s = this.prop(r, "scope");
    if (!s) return undefined;
    if (s.value.kind === "ident" && this.resources.has(s.value.name)) return this.resources.get(s.value.name);
    if (s.value.kind === "call" && s.value.name === "resourceGroup" && s.value.args.length === 0) return undefined;
    this.err(s.value, `'scope' must be a resource symbol or resourceGroup(); other scopes need a module, which is ${UNSUPPORTED}.`);
  }

  /** `sym.id`. */
  idExpr(r: ResourceDecl): string {
    const names: string[] = [];
    let root: ResourceDecl = r;
    for (let x: ResourceDecl | undefined = r; x; x = this.parentOf(x)) {
      names.unshift(this.nameExpr(x));
      root = x;
    }
    const scope = this.scopeResource(root);
    if (scope) return `extensionResourceId(${this.idExpr(scope)}, ${quote(r.type)}, ${names.join(", ")})`;
    return `resourceId(${quote(r.type)}, ${names.join(", ")})`;
  }

  /** An expression rooted at a resource symbol: `sym`, `sym.id`, `sym.properties.x`, … */
  resourceRef(r: ResourceDecl, path: string[], at: Expr): string {
    this.checkLoopRef(r, at);
    const [first, ...rest] = path;
    const tail = rest.map((p) => `.${p}`).join("");
    if (r.module) {
      const lower = first?.toLowerCase();
      if (lower === "outputs" && rest.length > 0) {
        const out = r.module.template?.outputs.find((o) => o.name === rest[0]);
        if (!out) this.err(at, `The module '${r.symbol}' has no output '${rest[0]}'.`);
        return `reference(${this.idExpr(r)}, ${quote(r.apiVersion)}).outputs.${rest[0]}.value${rest.slice(1).map((p) => `.${p}`).join("")}`;
      }
      if (lower !== "name" && lower !== "id") this.err(at, `Of a module, only '.name', '.id' and '.outputs.<name>' can be referenced in the sandbox's Bicep compiler.`);
    }
    switch (first?.toLowerCase()) {
      case "id":
        return this.idExpr(r) + tail;
      case "name":
        return this.nameExpr(r) + tail;
      case "type":
        return quote(r.type) + tail;
      case "apiversion":
        return quote(r.apiVersion) + tail;
      case "properties":
        return `reference(${this.idExpr(r)}, ${quote(r.apiVersion)})${tail}`;
      case undefined:
        return `reference(${this.idExpr(r)}, ${quote(r.apiVersion)}, 'full')`;
      default:
        return `reference(${this.idExpr(r)}, ${quote(r.apiVersion)}, 'full').${path.join(".")}`;
    }
  }

  // ---- expressions

  /** An expression as ARM expression text (no brackets). */
  expr(e: Expr): string {
    switch (e.kind) {
      case "string": {
        if (e.exprs.length === 0) return quote(e.parts[0]);
        const fmt = e.parts.map((p) => p.replaceAll("{", "{{").replaceAll("}", "}}")).reduce((acc, p, i) => acc + p + (i < e.exprs.length ? `{${i}}` : ""), "");
        return `format(${[quote(fmt), ...e.exprs.map((x) => this.expr(x))].join(", ")})`;
      }
      case "int":
        return String(e.value);
      case "bool":
        return e.value ? "true()" : "false()";
      case "null":
        return "null()";
      case "ident": {
        if (this.loop && e.name === this.loop.item) return `${this.expr(this.loop.iterable)}[copyIndex()]`;
        if (this.loop && e.name === this.loop.index) return "copyIndex()";
        if (this.params.has(e.name)) return `parameters(${quote(e.name)})`;
        if (this.vars.has(e.name)) {
          // Variables that reference resources are inlined (ARM evaluates variables before any resource exists).
          if (this.varResources(e.name).size > 0) return this.expr(this.tpl.vars.find((v) => v.name === e.name)!.value);
          return `variables(${quote(e.name)})`;
        }
        const r = this.resources.get(e.name);
        if (r) return this.resourceRef(r, [], e);
        this.err(e, `The name '${e.name}' does not exist in the current context.`);
        break;
      }
      case "object":
        return `createObject(${e.props.map((p) => `${p.keyExpr ? this.expr(p.keyExpr) : quote(p.key)}, ${this.expr(p.value)}`).join(", ")})`;
      case "array":
        return `createArray(${e.items.map((x) => this.expr(x)).join(", ")})`;
      case "member": {
        // A chain rooted at a resource symbol: sym.a.b.c
        const path: string[] = [];
        let x: Expr = e;
        while (x.kind === "member" && !x.safe) {
          path.unshift(x.name);
          x = x.object;
        }
        if (x.kind === "ident" && this.resources.has(x.name) && !(this.loop && (x.name === this.loop.item || x.name === this.loop.index))) {
          return this.resourceRef(this.resources.get(x.name)!, path, x);
        }
        if (e.safe) return `tryGet(${this.expr(e.object)}, ${quote(e.name)})`;
        return `${this.expr(e.object)}.${e.name}`;
      }
      case "index": {
        if (e.object.kind === "ident" && this.resources.get(e.object.name)?.loop) this.checkLoopRef(this.resources.get(e.object.name)!, e.object);
        if (e.safe) return `tryGet(${this.expr(e.object)}, ${this.expr(e.index)})`;
        return `${this.expr(e.object)}[${this.expr(e.index)}]`;
      }
      case "call":
        return `${e.name}(${e.args.map((a) => this.expr(a)).join(", ")})`;
      case "unary":
        if (e.op === "!") return `not(${this.expr(e.operand)})`;
        if (e.operand.kind === "int") return String(-e.operand.value);
        return `sub(0, ${this.expr(e.operand)})`;
      case "binary": {
        const l = this.expr(e.left);
        const r = this.expr(e.right);
        if (e.op === "!=") return `not(equals(${l}, ${r}))`;
        if (e.op === "=~") return `equals(toLower(${l}), toLower(${r}))`;
        if (e.op === "!~") return `not(equals(toLower(${l}), toLower(${r})))`;
        const fn = BINARY[e.op];
        if (!fn) this.err(e, `The operator '${e.op}' is ${UNSUPPORTED}.`);
        return `${fn}(${l}, ${r})`;
      }
      case "ternary":
        return `if(${this.expr(e.cond)}, ${this.expr(e.then)}, ${this.expr(e.otherwise)})`;
    }
  }

  /** An expression as a JSON value: literals stay JSON, the rest becomes "[expression]". */
  json(e: Expr): Json {
    switch (e.kind) {
      case "string":
        return e.exprs.length === 0 ? literal(e.parts[0]) : `[${this.expr(e)}]`;
      case "int":
      case "bool":
        return e.value;
      case "null":
        return null;
      case "object":
        return Object.fromEntries(e.props.map((p) => [p.keyExpr ? `[${this.expr(p.keyExpr)}]` : literal(p.key), this.json(p.value)]));
      case "array":
        return e.items.map((x) => this.json(x));
      default:
        return `[${this.expr(e)}]`;
    }
  }

  // ---- declarations

  parameter(p: ParamDecl): Json {
    const type = p.secure ? (p.type === "object" ? "secureObject" : "securestring") : p.type;
    const out: { [k: string]: Json } = { type };
    if (p.defaultValue) out.defaultValue = this.json(p.defaultValue);
    if (p.allowed) out.allowedValues = p.allowed;
    for (const k of ["minLength", "maxLength", "minValue", "maxValue"] as const) if (p[k] !== undefined) out[k] = p[k]!;
    if (p.description !== undefined) out.metadata = { description: p.description };
    return out;
  }

  resource(r: ResourceDecl): Json {
    if (r.loop) this.loop = { symbol: r.symbol, item: r.loop.item, index: r.loop.index, iterable: r.loop.iterable };
    try {
      const out: { [k: string]: Json } = { type: r.type, apiVersion: r.apiVersion, name: `[${this.fullNameExpr(r)}]` };
      const nameProp = this.prop(r, "name")!;
      if (!this.parentOf(r) && nameProp.value.kind === "string" && nameProp.value.exprs.length === 0) out.name = literal(nameProp.value.parts[0]);
      if (r.loop) {
        const saved = this.loop;
        this.loop = undefined; // the count is evaluated outside the loop
        out.copy = { name: r.symbol, count: `[length(${this.expr(r.loop.iterable)})]` };
        this.loop = saved;
      }
      if (r.condition) out.condition = `[${this.expr(r.condition)}]`;
      const scope = this.scopeResource(r);
      if (scope) out.scope = `[${this.idExpr(scope)}]`;
      if (r.module) {
        const params = this.prop(r, "params")?.value;
        out.properties = {
          expressionEvaluationOptions: { scope: "inner" },
          mode: "Incremental",
          parameters: Object.fromEntries((params?.kind === "object" ? params.props : []).map((p) => [p.key, { value: this.json(p.value) }])),
          template: compileBicep(r.module.template!),
        };
      }
      for (const p of r.body.props) {
        if (r.module) break;
        if (["name", "parent", "scope", "dependsOn"].includes(p.key) && !p.keyExpr) continue;
        out[p.keyExpr ? `[${this.expr(p.keyExpr)}]` : p.key] = this.json(p.value);
      }
      const deps = [...(this.deps.get(r.symbol) ?? [])].map((s) => this.resources.get(s)!).filter((d) => !d.existing);
      if (deps.length) {
        const saved = this.loop;
        this.loop = undefined;
        out.dependsOn = deps.map((d) => (d.loop ? d.symbol : `[${this.idExpr(d)}]`));
        this.loop = saved;
      }
      if (r.description !== undefined) out.metadata = { description: r.description };
      return out;
    } finally {
      this.loop = undefined;
    }
  }

  template(): { [k: string]: Json } {
    const out: { [k: string]: Json } = {
      $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion: "1.0.0.0",
      metadata: { _generator: { name: "bicep", version: "sandbox-subset" } },
      parameters: Object.fromEntries(this.tpl.params.map((p) => [p.name, this.parameter(p)])),
    };
    const vars = this.tpl.vars.filter((v) => this.varResources(v.name).size === 0);
    if (vars.length) out.variables = Object.fromEntries(vars.map((v) => [v.name, this.json(v.value)]));
    out.resources = this.tpl.resources.filter((r) => !r.existing).map((r) => this.resource(r));
    // Existing resources and loops still get checked for references they cannot express.
    out.outputs = Object.fromEntries(this.tpl.outputs.map((o) => [o.name, {
      type: o.secure ? (o.type === "object" ? "secureObject" : "securestring") : o.type,
      value: this.json(o.value),
      ...(o.description !== undefined ? { metadata: { description: o.description } } : {}),
    }]));
    return out;
  }
}

/** An ARM JSON template (what `bicep build` writes) from a parsed Bicep file (parseBicep). */
export function compileBicep(tpl: BicepTemplate): { [k: string]: Value } {
  return new Compiler(tpl).template();
}
