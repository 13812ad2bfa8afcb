// Static checks after parsing, each a BicepSyntaxError with line and column: duplicate and
// unknown names, what parameter defaults may reference, unknown functions and argument counts,
// 'parent' and 'dependsOn' targets; and the deployment order (cycles are compile errors).
import { BicepSyntaxError, UNSUPPORTED } from "./errors.mts";
import { FUNCTION_ARITY, arityProblem } from "../../services/arm/template/functions.mts";
import type { BicepTemplate, Expr, Pos, ResourceDecl } from "./types.mts";

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

export function checkTemplate(tpl: BicepTemplate): void {
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
        const problem = arityProblem(x.name, x.args.length);
        if (problem) fail(x.pos, problem);
      }
    });
  tpl.params.forEach((p) => p.defaultValue && checkExpr(p.defaultValue, true));
  tpl.vars.forEach((v) => checkExpr(v.value, false));
  tpl.outputs.forEach((o) => checkExpr(o.value, false));
  const byName = new Map(tpl.resources.map((r) => [r.symbol, r]));
  for (const r of tpl.resources) {
    if (r.module?.template) checkModuleParams(r, r.module.template, fail);
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
  deploymentOrder(tpl); // cycles are compile errors
}

/** A module's `params`: each a parameter the module declares, every one without a default given. */
function checkModuleParams(r: ResourceDecl, module: BicepTemplate, fail: (pos: Pos, message: string) => never): void {
  const given = r.body.props.find((p) => p.key === "params");
  const props = given?.value.kind === "object" ? given.value.props : [];
  const declared = new Map(module.params.map((p) => [p.name, p]));
  for (const p of props) {
    if (!declared.has(p.key)) fail(p.pos, `The module '${r.symbol}' has no parameter '${p.key}'; it declares ${[...declared.keys()].map((k) => `'${k}'`).join(", ") || "none"}.`);
  }
  const missing = module.params.filter((p) => !p.defaultValue && !props.some((x) => x.key === p.name)).map((p) => `'${p.name}'`);
  if (missing.length) fail((given ?? r).pos, `The module '${r.symbol}' is missing the required parameter(s) ${missing.join(", ")}.`);
}

/** Resources in the order to deploy them: dependencies first, otherwise in declaration order. */
export function deploymentOrder(tpl: BicepTemplate): ResourceDecl[] {
  return resourceDependencies(tpl).order;
}

/**
 * Each resource's dependencies (symbols it references, directly or through variables, and its
 * explicit dependsOn), which variables reference resources, and the deployment order.
 */
export function resourceDependencies(tpl: BicepTemplate): { deps: Map<string, Set<string>>; varResources: (name: string) => Set<string>; order: ResourceDecl[] } {
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
  return { deps, varResources, order };
}
