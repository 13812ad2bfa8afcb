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
 * Resource loops `[for x in xs: {...}]` / `[for (x, i) in xs: {...}]` deploy one resource per element.
 * Everything else (modules, other loops, conditions, lambdas, user types, imports, ...) is refused
 * with the file, line and column: never silently ignored.
 *
 * Deployment follows ARM: parameters are validated against the declarations before anything
 * is written (with ARM's error codes and messages), resources are put one at a time in
 * dependency order (implicit through symbol references, explicit through dependsOn), and
 * outputs come back typed the way ARM spells them (String, Int, Bool, Object, Array).
 *
 * This file is the entry: parseBicep() runs lexer.mts, parser.mts and checks.mts; deployBicep()
 * evaluates the template here, with the built-in functions of functions.mts. Types are in
 * types.mts, errors in errors.mts.
 *
 * @example
 * const { outputs } = await deployBicep({ source, fileName: "main.bicep", parameters: { userObjectId },
 *   context, putResource: (id, apiVersion, body) => armPut(id, apiVersion, body), getResource: armGet });
 */
import { checkTemplate, deploymentOrder } from "./checks.mts";
import { BicepSyntaxError, DeploymentError, ExpressionError, UNSUPPORTED } from "./errors.mts";
import { PURE_FUNCTIONS, arityProblem, deepEqual, fnError, isObject, str, toText, typeName, typedPath, type FnSpec } from "./functions.mts";
import { Lexer } from "./lexer.mts";
import { Parser } from "./parser.mts";
import type { ArmError, BicepTemplate, BicepType, CallExpr, DeployBicepOptions, DeployBicepResult, Expr, ParamDecl, Pos, ResourceDecl, Value } from "./types.mts";

/** Parse a Bicep file into its declarations; throws BicepSyntaxError (with file:line:column) on anything outside the subset. */
export function parseBicep(source: string, fileName: string): BicepTemplate {
  const tokens = new Lexer(source, fileName).tokenize();
  const tpl = new Parser(tokens, fileName).parseProgram();
  checkTemplate(tpl);
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
      return isObject(v as Value);
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
      const [type, ...names] = args.map((a) => str(c, a));
      return `${prefix}/providers/${typedPath(type, names, c.pos, "resource name")}`;
    };
    return {
      resourceGroup: {
        min: 0, max: 2, fn: (args, c): Value => {
          if (args.length === 0) {
            return { id: ctx.resourceGroup.id, name: ctx.resourceGroup.name, type: "Microsoft.Resources/resourceGroups", location: ctx.resourceGroup.location, properties: { provisioningState: "Succeeded" } };
          }
          const [s, name] = args.length === 2 ? args.map((a) => str(c, a)) : [ctx.subscriptionId, str(c, args[0])];
          return { id: `/subscriptions/${s}/resourceGroups/${name}`, name, type: "Microsoft.Resources/resourceGroups" };
        },
      },
      subscription: {
        min: 0, max: 1, fn: (args, c) => {
          const id = args.length ? str(c, args[0]) : ctx.subscriptionId;
          return { id: `/subscriptions/${id}`, subscriptionId: id, tenantId: ctx.tenantId };
        },
      },
      tenant: { min: 0, max: 0, fn: () => ({ tenantId: ctx.tenantId }) },
      deployment: { min: 0, max: 0, fn: () => ({ name: ctx.deploymentName, properties: {} }) },
      deployer: { min: 0, max: 0, fn: () => ({ objectId: ctx.deployer.objectId, tenantId: ctx.deployer.tenantId }) },
      resourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => str(c, a));
          const typeAt = strs.findIndex((s) => s.includes("/"));
          if (typeAt < 0 || typeAt > 2) fnError(c, "expects a resource type such as 'Microsoft.Storage/storageAccounts'.");
          const [s, rg] = typeAt === 2 ? strs : typeAt === 1 ? [ctx.subscriptionId, strs[0]] : [ctx.subscriptionId, ctx.resourceGroup.name];
          return typedId(`/subscriptions/${s}/resourceGroups/${rg}`, strs.slice(typeAt), c);
        },
      },
      subscriptionResourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => str(c, a));
          const withSub = !strs[0].includes("/");
          return typedId(withSub ? `/subscriptions/${strs[0]}` : sub, withSub ? strs.slice(1) : strs, c);
        },
      },
      tenantResourceId: { min: 2, max: Infinity, fn: (args, c) => typedId("", args, c) },
      extensionResourceId: {
        min: 3, max: Infinity, fn: (args, c) => typedId(str(c, args[0], "the resource id"), args.slice(1), c),
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
        throw _invalidTemplate(`Template parameter '${p.name}' was provided an invalid value. Expected a value of type '${p.type === "string" ? "String, Uri" : ARM_TYPE[p.type]}', but received a value of type '${typeName(value)}'. ${PARAMETER_FILE_HELP}`, p);
      }
    } else if (p.defaultValue) {
      try {
        value = this.evaluate(p.defaultValue);
      } catch (e) {
        if (e instanceof ExpressionError) throw _invalidTemplate(`The template parameter '${p.name}' at line '${e.pos.line}' and column '${e.pos.column}' is not valid: ${e.message}`, p);
        throw e;
      }
    } else {
      throw _invalidTemplate(`The value for the template parameter '${p.name}' at line '${p.pos.line}' and column '${p.pos.column}' is not provided. ${PARAMETER_FILE_HELP}`, p);
    }
    // Messages for @allowed follow ARM's; the length/value bound messages are close paraphrases.
    const notValid = `The provided value for the template parameter '${p.name}' is not valid.`;
    if (p.allowed && !p.allowed.some((a) => deepEqual(a, value))) {
      throw _invalidTemplate(`${notValid} The value '${toText(value)}' is not part of the allowed value(s): '${p.allowed.map(toText).join(",")}'.`, p);
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
      if (this.varsResolving.has(name)) throw new ExpressionError(pos, `The variable '${name}' is involved in a cycle.`);
      this.varsResolving.add(name);
      const value = this.evaluate(v.value);
      this.varsResolving.delete(name);
      this.vars.set(name, value);
      return value;
    }
    if (this.resources.has(name)) return this.resources.get(name)!;
    // The deployment order puts every resource before its dependants, so this means a bug here.
    throw new ExpressionError(pos, `The resource '${name}' is referenced before it was deployed.`);
  }

  evaluate(e: Expr): Value {
    switch (e.kind) {
      case "string":
        return e.parts.reduce((acc, part, i) => acc + part + (i < e.exprs.length ? toText(this.evaluate(e.exprs[i])) : ""), "");
      case "int":
      case "bool":
        return e.value;
      case "null":
        return null;
      case "ident":
        return this.lookup(e.name, e.pos);
      case "object":
        return Object.fromEntries(e.props.map((p) => [p.keyExpr ? toText(this.evaluate(p.keyExpr)) : p.key, this.evaluate(p.value)]));
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
          throw new ExpressionError(e.pos, `The language expression property array index '${index}' is out of bounds.`);
        }
        if (isObject(obj) && typeof index === "string") return this.property(obj, index, e.safe, e.pos);
        if (obj === null && e.safe) return null;
        throw new ExpressionError(e.pos, `Cannot index a value of type '${typeName(obj)}' with a value of type '${typeName(index)}'.`);
      }
      case "call":
        return this.call(e);
      case "unary": {
        const v = this.evaluate(e.operand);
        if (e.op === "!" && typeof v === "boolean") return !v;
        if (e.op === "-" && typeof v === "number") return -v;
        throw new ExpressionError(e.pos, `Cannot apply operator '${e.op}' to an operand of type '${typeName(v)}'.`);
      }
      case "binary":
        return this.binary(e.op, e.left, e.right, e.pos);
      case "ternary": {
        const cond = this.evaluate(e.cond);
        if (typeof cond !== "boolean") throw new ExpressionError(e.cond.pos, `The condition of '? :' must be of type 'Boolean', not '${typeName(cond)}'.`);
        return cond ? this.evaluate(e.then) : this.evaluate(e.otherwise);
      }
    }
  }

  /** ARM looks properties up case-insensitively. */
  property(obj: Value, name: string, safe: boolean, pos: Pos): Value {
    if (isObject(obj)) {
      if (Object.hasOwn(obj, name)) return obj[name];
      const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
      if (key !== undefined) return obj[key];
      if (safe) return null;
      throw new ExpressionError(pos, `The language expression property '${name}' doesn't exist, available properties are '${Object.keys(obj).join(", ")}'.`);
    }
    if (safe && obj === null) return null;
    throw new ExpressionError(pos, `The language expression property '${name}' can't be evaluated, property name must be a string and the value must be an object (it is of type '${typeName(obj)}').`);
  }

  binary(op: string, l: Expr, r: Expr, pos: Pos): Value {
    const left = this.evaluate(l);
    // Short-circuit like ARM's and()/or()/coalesce().
    if (op === "&&" || op === "||") {
      if (typeof left !== "boolean") throw new ExpressionError(pos, `Cannot apply operator '${op}' to an operand of type '${typeName(left)}'.`);
      if (op === "&&" ? !left : left) return left;
      const right = this.evaluate(r);
      if (typeof right !== "boolean") throw new ExpressionError(pos, `Cannot apply operator '${op}' to an operand of type '${typeName(right)}'.`);
      return right;
    }
    if (op === "??") return left !== null ? left : this.evaluate(r);
    const right = this.evaluate(r);
    const mismatch = (): never => {
      const hint = op === "+" && (typeof left === "string" || typeof right === "string") ? " Use string interpolation instead." : "";
      throw new ExpressionError(pos, `Cannot apply operator '${op}' to operands of type '${typeName(left)}' and '${typeName(right)}'.${hint}`);
    };
    switch (op) {
      case "==":
        return deepEqual(left, right);
      case "!=":
        return !deepEqual(left, right);
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
        if (b === 0) throw new ExpressionError(pos, "Attempted to divide by zero.");
        return op === "/" ? Math.trunc(a / b) : a % b;
    }
    throw new ExpressionError(pos, `The operator '${op}' is ${UNSUPPORTED}.`);
  }

  call(c: CallExpr): Value {
    const spec = this.functions[c.name];
    if (!spec) throw new BicepSyntaxError(this.tpl.fileName, c.pos, `The function '${c.name}' is ${UNSUPPORTED}.`);
    const problem = arityProblem(c.name, c.args.length);
    if (problem) throw new BicepSyntaxError(this.tpl.fileName, c.pos, problem);
    return spec.fn(c.args.map((a) => this.evaluate(a)), c);
  }

  // --- resources

  /** The resource's id, its declared name and the body to PUT. */
  plan(r: ResourceDecl): { id: string; name: string; body: Record<string, unknown> } {
    const prop = (key: string) => r.body.props.find((p) => p.key === key);
    const nameProp = prop("name")!;
    const name = this.evaluate(nameProp.value);
    if (typeof name !== "string" || name === "") throw new ExpressionError(nameProp.pos, `The resource name must be a non-empty string, not '${toText(name)}'.`);
    const rg = this.opts.context.resourceGroup.id;
    let id: string;
    const parent = prop("parent");
    const scope = prop("scope");
    if (parent) {
      const parentSymbol = (parent.value as { name: string }).name;
      const parentId = (this.resources.get(parentSymbol) as { id: string }).id;
      const segment = r.type.split("/").pop()!;
      if (name.includes("/")) throw new ExpressionError(nameProp.pos, `The name of a resource with 'parent' must be a single segment, not '${name}'.`);
      id = `${parentId}/${segment}/${name}`;
    } else if (scope) {
      const isResource = scope.value.kind === "ident" && this.tpl.resources.some((x) => x.symbol === (scope.value as { name: string }).name);
      const target = this.evaluate(scope.value);
      const targetId = isObject(target) && typeof target.id === "string" ? target.id : undefined;
      if (!targetId) throw new ExpressionError(scope.pos, "'scope' must be a resource or resourceGroup().");
      if (isResource) {
        // Extension resource (role assignments, locks, ...): lives under the scope's id.
        id = `${targetId}/providers/${typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
      } else if (/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+$/i.test(targetId) && (r.existing || targetId.toLowerCase() === rg.toLowerCase())) {
        id = `${targetId}/providers/${typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
      } else {
        throw new BicepSyntaxError(this.tpl.fileName, scope.pos, `Deploying to a scope other than this resource group (here '${targetId}') needs a module, which is ${UNSUPPORTED}.`);
      }
    } else {
      id = `${rg}/providers/${typedPath(r.type, name.split("/"), nameProp.pos, "template resource")}`;
    }
    const body: Record<string, unknown> = {};
    for (const p of r.body.props) {
      if (p.keyExpr) body[toText(this.evaluate(p.keyExpr))] = this.evaluate(p.value);
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

  const templateError = (r: ResourceDecl, e: ExpressionError) =>
    failed([{ code: "InvalidTemplate", message: `Unable to process template language expressions for resource '${r.symbol}' at line '${e.pos.line}' and column '${e.pos.column}'. '${e.message}'` }]);
  /** Plans and puts (or reads) one resource; returns its value for later references. */
  const deployOne = async (r: ResourceDecl): Promise<Value> => {
    let plan: { id: string; name: string; body: Record<string, unknown> };
    try {
      plan = ev.plan(r);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
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

  for (const r of deploymentOrder(tpl)) {
    if (!r.loop) {
      ev.resources.set(r.symbol, await deployOne(r));
      continue;
    }
    // A resource loop: one resource per element, in order; the symbol then stands for the array.
    let items: Value;
    try {
      items = ev.evaluate(r.loop.iterable);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
      throw templateError(r, e);
    }
    if (!Array.isArray(items)) {
      throw templateError(r, new ExpressionError(r.loop.iterable.pos, `The loop expression must be an array, not a value of type '${typeName(items)}'.`));
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
      if (!(e instanceof ExpressionError)) throw e;
      throw outputFailed(e.message);
    }
    if (!_hasType(value, o.type)) throw outputFailed(`Expected a value of type '${ARM_TYPE[o.type]}', but received a value of type '${typeName(value)}'.`);
    outputs[o.name] = o.secure ? { type: `Secure${ARM_TYPE[o.type]}`, value: null } : { type: ARM_TYPE[o.type], value };
  }
  return { outputs, resourceIds, parameters };
}
