/**
 * ARM's template engine for resource-group deployments: what runs behind
 * `PUT …/deployments/{name}` and `POST …/deployments/{name}/validate` (deployments.mts).
 *
 * The supported subset of the ARM template language (docs/azure-behaviour.md §5.5) is what the
 * Bicep templates in templates/ compile to, and a little more: `parameters` (string, securestring,
 * int, bool, object, secureObject, array; defaultValue, allowedValues, min/maxLength,
 * min/maxValue), `variables`, `resources` (type, apiVersion, name, location, properties, sku,
 * kind, tags, identity, …; `dependsOn`, `copy` loops, `condition`, `scope` of extension
 * resources, nested child `resources`), `outputs`, and the template functions of
 * functions.mts plus parameters(), variables(), reference(), resourceId() and
 * friends, resourceGroup(), subscription(), tenant(), deployment(), deployer(), environment(),
 * copyIndex(), if(), equals(), not(), and(), or(), the arithmetic and comparison functions,
 * createArray(), createObject(), tryGet(), true(), false(), null().
 * Nested deployments (Microsoft.Resources/deployments, what a Bicep module compiles to) into the
 * same resource group, with an inline template and the inner expression scope: their PUT goes to
 * ARM's deployments route like any resource, which runs the inner template (deployments.mts).
 * Anything else (user functions, user types, symbolic-name resources, property and output copy
 * loops, outer-scope or linked nested deployments, list*() functions, Key Vault parameter references, …) fails
 * validation with InvalidTemplate naming it: never a silent success.
 *
 * validateTemplate() does what ARM's preflight does (shape, parameters, names, dependsOn, copy
 * counts, functions); deployTemplate() then puts the resources in dependency order through a
 * ResourceIO and evaluates the outputs.
 */
import { ExpressionError } from "./errors.mts";
import { PURE_FUNCTIONS, deepEqual, isObject, str, toText, typeName, typedPath, type FnSpec } from "./functions.mts";
import type { ArmError, CallExpr, Expr, Pos, Value } from "./types.mts";
import { isExpression, literalText, parseExpression } from "./expression.mts";

type Obj = { [key: string]: Value };

export interface TemplateScope {
  subscriptionId: string;
  tenantId: string;
  resourceGroup: { id: string; name: string; location: string; tags?: Record<string, string> };
  deploymentName: string;
  deployer: { objectId: string; tenantId: string };
  /** What environment() returns (the cloud's endpoints). */
  environment: Obj;
}

/** How the engine reaches resource providers (the same handlers a direct request uses). */
export interface ResourceIO {
  put(id: string, apiVersion: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  get(id: string, apiVersion: string): Promise<Record<string, unknown>>;
}

/** A failed provider call: its HTTP status and ARM error. */
export class ProviderError extends Error {
  status: number;
  error: ArmError;
  constructor(status: number, error: ArmError) {
    super(error.message);
    this.status = status;
    this.error = error;
  }
}

/** Preflight failure (InvalidTemplate, InvalidTemplateDeployment): HTTP 400, nothing deployed. */
export class TemplateValidationError extends Error {
  error: ArmError;
  constructor(error: ArmError) {
    super(error.message);
    this.error = error;
  }
}

/** A deployment that started and failed (DeploymentFailed, DeploymentOutputEvaluationFailed). */
export class TemplateDeploymentError extends Error {
  error: ArmError;
  constructor(error: ArmError) {
    super(error.message);
    this.error = error;
  }
}

const UNSUPPORTED = "not supported by the sandbox's template engine";
const PARAMETER_FILE_HELP = "Please see https://aka.ms/arm-create-parameter-file for usage details.";
const SYNTAX_HELP = "Please see https://aka.ms/arm-syntax for usage details.";
const PARAM_TYPES: Record<string, string> = {
  string: "String", securestring: "SecureString", int: "Int", bool: "Bool", object: "Object", secureobject: "SecureObject", array: "Array",
};
const RESOURCE_META = new Set(["type", "apiversion", "name", "dependson", "copy", "condition", "scope", "resources", "comments", "metadata"]);
const TOP_LEVEL = new Set(["$schema", "contentversion", "metadata", "parameters", "variables", "resources", "outputs", "apiprofile"]);

const NESTED_DEPLOYMENT = "microsoft.resources/deployments";

const invalid = (inner: string, path?: string): TemplateValidationError =>
  new TemplateValidationError({
    code: "InvalidTemplate",
    message: `Deployment template validation failed: '${inner}'.`,
    // ARM gives the line and column in the request; the engine sees parsed JSON only (0, 0 here),
    // deployments.mts fills them in from the request text by the path.
    ...(path ? { additionalInfo: [{ type: "TemplateViolation", info: { lineNumber: 0, linePosition: 0, path: `properties.template.${path}` } }] } : {}),
  });

function hasType(v: Value | undefined, armType: string): boolean {
  switch (armType) {
    case "string":
    case "securestring":
      return typeof v === "string";
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "bool":
      return typeof v === "boolean";
    case "object":
    case "secureobject":
      return isObject(v);
    case "array":
      return Array.isArray(v);
  }
  return false;
}

/** One resource instance to deploy (a copy loop gives one per index). */
export interface PlannedResource {
  /** Full resource id. */
  id: string;
  type: string;
  apiVersion: string;
  /** Full name ("vault/key" for a child). */
  name: string;
  /** The resource's template JSON (nested `resources` removed). */
  json: Obj;
  /** Where it is in the template, for messages: "resources[2]". */
  path: string;
  /** The copy loop it belongs to: name and index. */
  copy?: { name: string; index: number };
  /** Ids of the instances it waits for. */
  dependsOn: string[];
}

export interface ValidatedTemplate {
  /** Every parameter with its effective value, as ARM records it (secure ones without value). */
  parameters: Record<string, { type: string; value?: unknown }>;
  /** In deployment order. */
  resources: PlannedResource[];
  evaluator: TemplateEvaluator;
  outputs: Obj;
}

type Phase = "validate" | "deploy";

class TemplateEvaluator {
  template: Obj;
  scope: TemplateScope;
  io?: ResourceIO;
  phase: Phase = "validate";
  paramDecls = new Map<string, { name: string; decl: Obj }>();
  provided = new Map<string, Value>();
  params = new Map<string, Value>();
  paramsResolving = new Set<string>();
  vars = new Map<string, Value>();
  varsResolving = new Set<string>();
  /** copy loop name (lower case) → current index; "" = the innermost. */
  copyIndexes = new Map<string, number>();
  /** Deployed resources by lower-case id: what the provider returned. */
  deployed = new Map<string, Record<string, unknown>>();
  /** Template resources by lower-case id and by lower-case name, for reference(). */
  planned = new Map<string, PlannedResource>();
  functions: Map<string, FnSpec>;

  constructor(template: Obj, scope: TemplateScope) {
    this.template = template;
    this.scope = scope;
    const all: Record<string, FnSpec> = { ...PURE_FUNCTIONS, ...this.contextFunctions() };
    this.functions = new Map(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v]));
  }

  contextFunctions(): Record<string, FnSpec> {
    const s = this.scope;
    const typedId = (prefix: string, args: Value[], c: CallExpr) => {
      const [type, ...names] = args.map((a) => str(c, a));
      return `${prefix}/providers/${typedPath(type, names.flatMap((n) => n.split("/")), c.pos, "resource name")}`;
    };
    const num = (c: CallExpr, v: Value): number => {
      if (typeof v !== "number") throw new ExpressionError(c.pos, `The template function '${c.name}' expects integers, not '${typeName(v)}'.`);
      return v;
    };
    const compare = (f: (a: number | string, b: number | string) => boolean): FnSpec => ({
      min: 2, max: 2, fn: ([a, b], c) => {
        if (!((typeof a === "number" && typeof b === "number") || (typeof a === "string" && typeof b === "string"))) {
          throw new ExpressionError(c.pos, `The template function '${c.name}' expects two integers or two strings, not '${typeName(a)}' and '${typeName(b)}'.`);
        }
        return f(a, b);
      },
    });
    return {
      resourceGroup: {
        min: 0, max: 2, fn: (args, c): Value => {
          if (args.length === 0) {
            return {
              id: s.resourceGroup.id, name: s.resourceGroup.name, type: "Microsoft.Resources/resourceGroups", location: s.resourceGroup.location,
              ...(s.resourceGroup.tags ? { tags: s.resourceGroup.tags } : {}), properties: { provisioningState: "Succeeded" },
            };
          }
          // Another group (for scopes and ids): only what its name says.
          const [sub, name] = args.length === 2 ? args.map((a) => str(c, a)) : [s.subscriptionId, str(c, args[0])];
          return { id: `/subscriptions/${sub}/resourceGroups/${name}`, name, type: "Microsoft.Resources/resourceGroups" };
        },
      },
      subscription: {
        min: 0, max: 1, fn: (args, c) => {
          const id = args.length ? str(c, args[0]) : s.subscriptionId;
          return { id: `/subscriptions/${id}`, subscriptionId: id, tenantId: s.tenantId };
        },
      },
      tenant: { min: 0, max: 0, fn: () => ({ tenantId: s.tenantId }) },
      deployment: { min: 0, max: 0, fn: () => ({ name: s.deploymentName, properties: { templateLink: null } }) },
      deployer: { min: 0, max: 0, fn: () => ({ objectId: s.deployer.objectId, tenantId: s.deployer.tenantId }) },
      environment: { min: 0, max: 0, fn: () => s.environment },
      resourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => str(c, a));
          const typeAt = strs.findIndex((x) => x.includes("/") && !x.startsWith("/"));
          if (typeAt < 0 || typeAt > 2) throw new ExpressionError(c.pos, "The template function 'resourceId' expects a resource type such as 'Microsoft.Storage/storageAccounts'.");
          const [sub, rg] = typeAt === 2 ? strs : typeAt === 1 ? [s.subscriptionId, strs[0]] : [s.subscriptionId, s.resourceGroup.name];
          return typedId(`/subscriptions/${sub}/resourceGroups/${rg}`, strs.slice(typeAt), c);
        },
      },
      subscriptionResourceId: {
        min: 2, max: Infinity, fn: (args, c) => {
          const strs = args.map((a) => str(c, a));
          const withSub = !strs[0].includes("/");
          return typedId(withSub ? `/subscriptions/${strs[0]}` : `/subscriptions/${s.subscriptionId}`, withSub ? strs.slice(1) : strs, c);
        },
      },
      tenantResourceId: { min: 2, max: Infinity, fn: (args, c) => typedId("", args, c) },
      extensionResourceId: { min: 3, max: Infinity, fn: (args, c) => typedId(str(c, args[0], "the resource id"), args.slice(1), c) },
      equals: { min: 2, max: 2, fn: ([a, b]) => deepEqual(a, b) },
      not: { min: 1, max: 1, fn: ([a], c) => !this.bool(c, a) },
      and: { min: 2, max: Infinity, fn: (args, c) => args.every((a) => this.bool(c, a)) },
      or: { min: 2, max: Infinity, fn: (args, c) => args.some((a) => this.bool(c, a)) },
      add: { min: 2, max: 2, fn: ([a, b], c) => num(c, a) + num(c, b) },
      sub: { min: 2, max: 2, fn: ([a, b], c) => num(c, a) - num(c, b) },
      mul: { min: 2, max: 2, fn: ([a, b], c) => num(c, a) * num(c, b) },
      div: {
        min: 2, max: 2, fn: ([a, b], c) => {
          if (num(c, b) === 0) throw new ExpressionError(c.pos, "Attempted to divide by zero.");
          return Math.trunc(num(c, a) / num(c, b));
        },
      },
      mod: {
        min: 2, max: 2, fn: ([a, b], c) => {
          if (num(c, b) === 0) throw new ExpressionError(c.pos, "Attempted to divide by zero.");
          return num(c, a) % num(c, b);
        },
      },
      less: compare((a, b) => a < b),
      lessOrEquals: compare((a, b) => a <= b),
      greater: compare((a, b) => a > b),
      greaterOrEquals: compare((a, b) => a >= b),
      true: { min: 0, max: 0, fn: () => true },
      false: { min: 0, max: 0, fn: () => false },
      null: { min: 0, max: 0, fn: () => null },
      createArray: { min: 0, max: Infinity, fn: (args) => args },
      createObject: {
        min: 0, max: Infinity, fn: (args, c) => {
          if (args.length % 2) throw new ExpressionError(c.pos, "The template function 'createObject' expects an even number of arguments (names and values).");
          const out: Obj = {};
          for (let i = 0; i < args.length; i += 2) out[str(c, args[i], "property names")] = args[i + 1];
          return out;
        },
      },
      tryGet: {
        min: 2, max: Infinity, fn: ([x, ...keys]) => {
          let v: Value = x;
          for (const k of keys) {
            if (Array.isArray(v) && typeof k === "number") v = v[k] ?? null;
            else if (isObject(v) && typeof k === "string") {
              const key = Object.keys(v).find((n) => n.toLowerCase() === k.toLowerCase());
              v = key === undefined ? null : v[key];
            } else return null;
          }
          return v;
        },
      },
    };
  }

  bool(c: CallExpr, v: Value): boolean {
    if (typeof v !== "boolean") throw new ExpressionError(c.pos, `The template function '${c.name}' expects boolean arguments, not '${typeName(v)}'.`);
    return v;
  }

  // ---- parameters and variables

  async validateParameters(provided: Obj): Promise<Record<string, { type: string; value?: unknown }>> {
    const decls = this.template.parameters ?? {};
    if (!isObject(decls)) throw invalid(`The template 'parameters' must be an object. ${SYNTAX_HELP}`, "parameters");
    for (const [name, decl] of Object.entries(decls)) {
      if (!isObject(decl) || typeof decl.type !== "string") throw invalid(`The template parameter '${name}' must have a 'type'. ${SYNTAX_HELP}`, `parameters.${name}`);
      if (!PARAM_TYPES[decl.type.toLowerCase()]) throw invalid(`The template parameter '${name}' has type '${decl.type}', which is ${UNSUPPORTED}.`, `parameters.${name}.type`);
      this.paramDecls.set(name.toLowerCase(), { name, decl });
    }
    const unknown = Object.keys(provided).filter((k) => !this.paramDecls.has(k.toLowerCase()));
    if (unknown.length > 0) {
      throw invalid(`The template parameters '${unknown.join(", ")}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '${Object.keys(decls).join(", ")}'. Please see https://aka.ms/arm-pass-parameter-values for usage details.`);
    }
    for (const [k, v] of Object.entries(provided)) {
      if (!isObject(v) || !("value" in v)) {
        const what = isObject(v) && "reference" in v ? "A Key Vault reference" : "A parameter without 'value'";
        throw new TemplateValidationError({ code: "InvalidTemplateDeployment", message: `The template deployment '${this.scope.deploymentName}' is not valid: parameter '${k}': ${what} is ${UNSUPPORTED}.` });
      }
      this.provided.set(k.toLowerCase(), v.value);
    }
    const record: Record<string, { type: string; value?: unknown }> = {};
    for (const { name, decl } of this.paramDecls.values()) {
      const value = await this.param(name);
      const t = (decl.type as string).toLowerCase();
      record[name] = t.startsWith("secure") ? { type: PARAM_TYPES[t] } : { type: PARAM_TYPES[t], value };
    }
    return record;
  }

  async param(name: string, pos?: Pos): Promise<Value> {
    const entry = this.paramDecls.get(name.toLowerCase());
    if (!entry) throw new ExpressionError(pos ?? { line: 1, column: 1 }, `The template parameter '${name}' is not found. Please see https://aka.ms/arm-syntax-parameters for usage details.`);
    const key = entry.name;
    if (this.params.has(key)) return this.params.get(key)!;
    const { decl } = entry;
    const path = `parameters.${key}`;
    if (this.paramsResolving.has(key)) throw invalid(`The template parameter '${key}' is involved in a cycle of default values.`, path);
    this.paramsResolving.add(key);
    const t = (decl.type as string).toLowerCase();
    let value: Value;
    if (this.provided.has(key.toLowerCase())) {
      value = this.provided.get(key.toLowerCase())!;
      if (!hasType(value, t)) {
        throw invalid(`Template parameter '${key}' was provided an invalid value. Expected a value of type '${t.endsWith("string") ? "String, Uri" : PARAM_TYPES[t]}', but received a value of type '${typeName(value)}'. ${PARAMETER_FILE_HELP}`, path);
      }
    } else if ("defaultValue" in decl) {
      try {
        value = await this.value(decl.defaultValue);
      } catch (e) {
        if (e instanceof ExpressionError) throw invalid(`The template parameter '${key}' is not valid: ${e.message}`, `${path}.defaultValue`);
        throw e;
      }
    } else {
      throw invalid(`The value for the template parameter '${key}' is not provided. ${PARAMETER_FILE_HELP}`, path);
    }
    const notValid = `The provided value for the template parameter '${key}' is not valid.`;
    const allowed = decl.allowedValues;
    if (Array.isArray(allowed) && !allowed.some((a) => deepEqual(a, value))) {
      throw invalid(`${notValid} The value '${toText(value)}' is not part of the allowed value(s): '${allowed.map(toText).join(",")}'.`, path);
    }
    const length = typeof value === "string" || Array.isArray(value) ? value.length : undefined;
    const bound = (k: string) => (typeof decl[k] === "number" ? decl[k] as number : undefined);
    if (length !== undefined && bound("minLength") !== undefined && length < bound("minLength")!) {
      throw invalid(`${notValid} Length of the value should be greater than or equal to '${bound("minLength")}'.`, path);
    }
    if (length !== undefined && bound("maxLength") !== undefined && length > bound("maxLength")!) {
      throw invalid(`${notValid} Length of the value should be less than or equal to '${bound("maxLength")}'.`, path);
    }
    if (typeof value === "number" && bound("minValue") !== undefined && value < bound("minValue")!) {
      throw invalid(`${notValid} The value should be greater than or equal to '${bound("minValue")}'.`, path);
    }
    if (typeof value === "number" && bound("maxValue") !== undefined && value > bound("maxValue")!) {
      throw invalid(`${notValid} The value should be less than or equal to '${bound("maxValue")}'.`, path);
    }
    this.paramsResolving.delete(key);
    this.params.set(key, value);
    return value;
  }

  async variable(name: string, pos: Pos): Promise<Value> {
    const vars = isObject(this.template.variables) ? this.template.variables : {};
    const key = Object.keys(vars).find((k) => k.toLowerCase() === name.toLowerCase());
    if (key === undefined) throw new ExpressionError(pos, `The template variable '${name}' is not found. Please see https://aka.ms/arm-syntax-variables for usage details.`);
    if (this.vars.has(key)) return this.vars.get(key)!;
    if (this.varsResolving.has(key)) throw new ExpressionError(pos, `The template variable '${key}' is involved in a cycle.`);
    this.varsResolving.add(key);
    try {
      const v = await this.value(vars[key]);
      this.vars.set(key, v);
      return v;
    } finally {
      this.varsResolving.delete(key);
    }
  }

  // ---- values and expressions

  /** A template JSON value with its expressions evaluated (keys too). */
  async value(v: Value): Promise<Value> {
    if (typeof v === "string") return isExpression(v) ? await this.evaluate(parseExpression(v)) : literalText(v);
    if (Array.isArray(v)) {
      const out: Value[] = [];
      for (const x of v) out.push(await this.value(x));
      return out;
    }
    if (isObject(v)) {
      const out: Obj = {};
      for (const [k, x] of Object.entries(v)) {
        if (k.toLowerCase() === "copy" && Array.isArray(x)) throw new ExpressionError({ line: 1, column: 1 }, `Property copy loops ('copy' inside an object) are ${UNSUPPORTED}.`);
        const key = isExpression(k) ? toText(await this.evaluate(parseExpression(k))) : literalText(k);
        out[key] = await this.value(x);
      }
      return out;
    }
    return v;
  }

  async evaluate(e: Expr): Promise<Value> {
    switch (e.kind) {
      case "string":
        return e.parts.join("");
      case "int":
      case "bool":
        return e.value;
      case "null":
        return null;
      case "member":
        return this.property(await this.evaluate(e.object), e.name, e.pos);
      case "index": {
        const obj = await this.evaluate(e.object);
        const index = await this.evaluate(e.index);
        if (Array.isArray(obj) && typeof index === "number") {
          if (index >= 0 && index < obj.length) return obj[index];
          throw new ExpressionError(e.pos, `The language expression property array index '${index}' is out of bounds.`);
        }
        if (isObject(obj) && typeof index === "string") return this.property(obj, index, e.pos);
        throw new ExpressionError(e.pos, `Cannot index a value of type '${typeName(obj)}' with a value of type '${typeName(index)}'.`);
      }
      case "call":
        return this.call(e);
      default:
        throw new ExpressionError(e.pos, `The expression kind '${e.kind}' is ${UNSUPPORTED}.`);
    }
  }

  property(obj: Value, name: string, pos: Pos): Value {
    if (isObject(obj)) {
      if (Object.hasOwn(obj, name)) return obj[name];
      const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
      if (key !== undefined) return obj[key];
      throw new ExpressionError(pos, `The language expression property '${name}' doesn't exist, available properties are '${Object.keys(obj).join(", ")}'.`);
    }
    throw new ExpressionError(pos, `The language expression property '${name}' can't be evaluated, property name must be a string and the value must be an object (it is of type '${typeName(obj)}').`);
  }

  async call(c: CallExpr): Promise<Value> {
    const name = c.name.toLowerCase();
    if (name === "if") {
      if (c.args.length !== 3) throw new ExpressionError(c.pos, `The template function 'if' expects 3 arguments, got ${c.args.length}.`);
      const cond = await this.evaluate(c.args[0]);
      return this.bool(c, cond) ? this.evaluate(c.args[1]) : this.evaluate(c.args[2]);
    }
    const args: Value[] = [];
    for (const a of c.args) args.push(await this.evaluate(a));
    switch (name) {
      case "parameters":
        return this.param(str(c, args[0] ?? null, "the parameter name"), c.pos);
      case "variables":
        return this.variable(str(c, args[0] ?? null, "the variable name"), c.pos);
      case "copyindex":
        return this.copyIndex(c, args);
      case "reference":
        return this.reference(c, args);
    }
    const spec = this.functions.get(name);
    if (!spec) {
      const hint = /^list/i.test(c.name) ? " (list* functions are not supported)" : "";
      throw new ExpressionError(c.pos, `The template function '${c.name}' is not valid${hint}: it is ${UNSUPPORTED}. Please see https://aka.ms/arm-functions for usage details.`);
    }
    if (args.length < spec.min || args.length > spec.max) {
      throw new ExpressionError(c.pos, `The template function '${c.name}' expects ${spec.min === spec.max ? spec.min : `${spec.min} to ${spec.max}`} argument(s), got ${args.length}.`);
    }
    return spec.fn(args, c);
  }

  copyIndex(c: CallExpr, args: Value[]): Value {
    let loop = "";
    let offset = 0;
    for (const a of args) {
      if (typeof a === "string") loop = a.toLowerCase();
      else if (typeof a === "number") offset = a;
    }
    const i = this.copyIndexes.get(loop);
    if (i === undefined) throw new ExpressionError(c.pos, `The template function 'copyIndex' is not expected at this location${loop ? ` (no copy loop '${loop}')` : ""}. Please see https://aka.ms/arm-copy for usage details.`);
    return i + offset;
  }

  async reference(c: CallExpr, args: Value[]): Promise<Value> {
    if (this.phase === "validate") {
      throw new ExpressionError(c.pos, "The template function 'reference' is not expected at this location. Please see https://aka.ms/arm-functions-resource for usage details.");
    }
    if (args.length < 1 || args.length > 3) throw new ExpressionError(c.pos, `The template function 'reference' expects 1 to 3 arguments, got ${args.length}.`);
    const target = str(c, args[0], "the resource id or name");
    const apiVersion = args[1] === undefined || args[1] === null ? undefined : str(c, args[1], "the api-version");
    const full = typeof args[2] === "string" && args[2].toLowerCase() === "full";
    const inTemplate = this.planned.get(target.toLowerCase());
    let resource: Record<string, unknown> | undefined;
    if (inTemplate) {
      resource = this.deployed.get(inTemplate.id.toLowerCase());
      if (!resource) throw new ExpressionError(c.pos, `The resource '${inTemplate.id}' is referenced before it is deployed; add it to 'dependsOn'.`);
    } else {
      if (!target.startsWith("/")) throw new ExpressionError(c.pos, `The resource '${target}' is not defined in the template.`);
      if (!apiVersion) throw new ExpressionError(c.pos, `The template function 'reference' needs an api-version for '${target}', which is not defined in the template.`);
      try {
        resource = await this.io!.get(target, apiVersion);
      } catch (e) {
        if (e instanceof ProviderError) throw new ExpressionError(c.pos, `The Resource '${target}' was not found: ${e.error.code}: ${e.error.message}`);
        throw e;
      }
    }
    const r = resource as Obj;
    return full ? r : (isObject(r.properties) ? r.properties : {});
  }
}

/** Where a resource's id starts: its scope (extension resources) or the resource group. */
function scopeOf(scope: TemplateScope, raw: Value, path: string): string {
  if (raw === undefined || raw === null) return scope.resourceGroup.id;
  if (typeof raw !== "string") throw invalid(`The template resource at '${path}' has a 'scope' that is not a string.`, `${path}.scope`);
  const id = raw.startsWith("/") ? raw : `${scope.resourceGroup.id}/providers/${raw}`;
  if (!id.toLowerCase().startsWith(scope.resourceGroup.id.toLowerCase() + "/") && id.toLowerCase() !== scope.resourceGroup.id.toLowerCase()) {
    throw invalid(`The template resource at '${path}' has scope '${raw}' outside the deployment's resource group; other scopes need nested deployments, which are ${UNSUPPORTED}.`, `${path}.scope`);
  }
  return id;
}

const exprError = (where: string, path: string, e: ExpressionError) =>
  invalid(`Unable to process template language expressions for ${where} at line '${e.pos.line}' and column '${e.pos.column}'. '${e.message}'`, path);

/** Preflight: the shape, parameters, names, ids, copy counts, conditions and dependencies. */
export async function validateTemplate(template: unknown, parameters: unknown, scope: TemplateScope): Promise<ValidatedTemplate> {
  if (!isObject(template as Value)) throw invalid(`The template must be a JSON object. ${SYNTAX_HELP}`);
  const tpl = template as Obj;
  for (const k of Object.keys(tpl)) {
    if (!TOP_LEVEL.has(k.toLowerCase())) {
      const what: Record<string, string> = { functions: "User-defined functions are", definitions: "User-defined types are", languageversion: "languageVersion (symbolic-name templates) is" };
      throw invalid(`The template property '${k}' is not valid: ${what[k.toLowerCase()] ?? `'${k}' is`} ${UNSUPPORTED}. ${SYNTAX_HELP}`, k);
    }
  }
  if (parameters !== undefined && parameters !== null && !isObject(parameters as Value)) {
    throw new TemplateValidationError({ code: "InvalidRequestContent", message: "The request content was invalid and could not be deserialized: 'properties.parameters must be an object.'." });
  }
  const ev = new TemplateEvaluator(tpl, scope);
  // Every expression must parse and use only functions the engine has: fail here, not halfway through.
  checkFunctions(tpl, ev);
  const record = await ev.validateParameters((parameters ?? {}) as Obj);
  if (tpl.variables !== undefined && !isObject(tpl.variables)) throw invalid(`The template 'variables' must be an object. ${SYNTAX_HELP}`, "variables");
  for (const k of Object.keys(isObject(tpl.variables) ? tpl.variables : {})) {
    if (k.toLowerCase() === "copy") throw invalid(`Variable copy loops are ${UNSUPPORTED}.`, "variables.copy");
  }
  const resources = tpl.resources ?? [];
  if (!Array.isArray(resources)) throw invalid(`The template 'resources' must be an array; symbolic-name resources (an object) are ${UNSUPPORTED}. ${SYNTAX_HELP}`, "resources");

  // Expand nested children and copy loops into instances with full types, names and ids.
  const instances: PlannedResource[] = [];
  const copyNames = new Map<string, PlannedResource[]>();
  const rawDeps = new Map<PlannedResource, Value[]>();
  const skipped = new Set<string>();
  const expand = async (list: Value[], basePath: string, parent?: PlannedResource) => {
    for (let i = 0; i < list.length; i++) {
      const path = `${basePath}[${i}]`;
      const r = list[i];
      if (!isObject(r)) throw invalid(`The template resource at '${path}' must be an object. ${SYNTAX_HELP}`, path);
      for (const k of ["type", "apiVersion", "name"]) {
        const key = Object.keys(r).find((x) => x.toLowerCase() === k.toLowerCase());
        if (key === undefined || typeof r[key] !== "string" || r[key] === "") throw invalid(`The template resource at '${path}' has no '${k}'. ${SYNTAX_HELP}`, path);
      }
      const get = (k: string): Value | undefined => r[Object.keys(r).find((x) => x.toLowerCase() === k.toLowerCase()) ?? ""];
      let type = get("type") as string;
      if (type.toLowerCase() === NESTED_DEPLOYMENT) checkNestedDeployment(r, path);
      if (parent && !type.split("/")[0].includes(".")) type = `${parent.type}/${type}`;
      if (isExpression(type)) throw invalid(`The template resource at '${path}' has an expression as its type. ${SYNTAX_HELP}`, `${path}.type`);
      if (get("resourceGroup") !== undefined || get("subscriptionId") !== undefined) {
        throw invalid(`The template resource at '${path}' targets another resource group or subscription, which needs a nested deployment: ${UNSUPPORTED}.`, path);
      }
      const copy = get("copy");
      const children = get("resources");
      if (copy !== undefined && (!isObject(copy) || typeof copy.name !== "string")) throw invalid(`The template resource at '${path}' has a 'copy' without a name. ${SYNTAX_HELP}`, `${path}.copy`);
      if (copy !== undefined && children !== undefined) throw invalid(`The template resource at '${path}' has both 'copy' and nested 'resources', which is ${UNSUPPORTED}.`, path);
      let count = 1;
      if (isObject(copy)) {
        try {
          const n = await ev.value(copy.count ?? null);
          if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 800) throw new ExpressionError({ line: 1, column: 1 }, `The copy count must be an integer from 0 to 800, not '${toText(n)}'.`);
          count = n;
        } catch (e) {
          if (e instanceof ExpressionError) throw exprError(`the copy loop '${copy.name}'`, `${path}.copy.count`, e);
          throw e;
        }
        copyNames.set((copy.name as string).toLowerCase(), []);
      }
      const json: Obj = Object.fromEntries(Object.entries(r).filter(([k]) => k.toLowerCase() !== "resources"));
      for (let index = 0; index < count; index++) {
        if (isObject(copy)) {
          ev.copyIndexes.set((copy.name as string).toLowerCase(), index);
          ev.copyIndexes.set("", index);
        }
        try {
          let name = await ev.value(get("name")!);
          if (typeof name !== "string" || !name) throw new ExpressionError({ line: 1, column: 1 }, `The resource name must be a non-empty string, not '${toText(name)}'.`);
          if (parent && !name.includes("/")) name = `${parent.name}/${name}`;
          const base = scopeOf(scope, await ev.value(get("scope") ?? null), path);
          const id = `${base}/providers/${typedPath(type, name.split("/"), { line: 1, column: 1 }, "template resource")}`;
          const cond = get("condition");
          if (cond !== undefined) {
            const ok = await ev.value(cond);
            if (typeof ok !== "boolean") throw new ExpressionError({ line: 1, column: 1 }, `The 'condition' must be a boolean, not '${typeName(ok)}'.`);
            if (!ok) {
              // A resource whose condition is false is not deployed; dependsOn entries naming it are ignored.
              skipped.add(id.toLowerCase()).add(name.toLowerCase()).add(`${type}/${name}`.toLowerCase());
              continue;
            }
          }
          const deps = get("dependsOn") ?? [];
          if (!Array.isArray(deps)) throw new ExpressionError({ line: 1, column: 1 }, "'dependsOn' must be an array.");
          const evaluatedDeps: Value[] = [];
          for (const d of deps) evaluatedDeps.push(await ev.value(d));
          const inst: PlannedResource = {
            id, type, apiVersion: get("apiVersion") as string, name, json, path,
            ...(isObject(copy) ? { copy: { name: copy.name as string, index } } : {}), dependsOn: parent ? [parent.id] : [],
          };
          if (instances.some((x) => x.id.toLowerCase() === id.toLowerCase())) {
            throw invalid(`The resource '${id}' is defined multiple times in a template. ${SYNTAX_HELP}`, path);
          }
          instances.push(inst);
          rawDeps.set(inst, evaluatedDeps);
          if (isObject(copy)) copyNames.get((copy.name as string).toLowerCase())!.push(inst);
          if (Array.isArray(children)) await expand(children, `${path}.resources`, inst);
        } catch (e) {
          if (e instanceof ExpressionError) throw exprError(`resource '${typeof get("name") === "string" ? get("name") : path}'`, path, e);
          throw e;
        } finally {
          ev.copyIndexes.clear();
        }
      }
    }
  };
  await expand(resources, "resources");

  // dependsOn: resource ids, names ("name", "type/name") or copy loop names.
  const byId = new Map(instances.map((x) => [x.id.toLowerCase(), x]));
  for (const inst of instances) {
    for (const d of rawDeps.get(inst)!) {
      if (typeof d !== "string") throw invalid(`The 'dependsOn' entries of resource '${inst.name}' must be strings.`, `${inst.path}.dependsOn`);
      const key = d.toLowerCase();
      const found = byId.get(key) ? [byId.get(key)!]
        : copyNames.get(key) ?? instances.filter((x) => x.name.toLowerCase() === key || `${x.type}/${x.name}`.toLowerCase() === key);
      if (!found.length && skipped.has(key)) continue;
      if (!found.length) {
        throw invalid(`The resource '${d}' is not defined in the template. ${SYNTAX_HELP}`, `${inst.path}.dependsOn`);
      }
      for (const f of found) if (f !== inst && !inst.dependsOn.includes(f.id)) inst.dependsOn.push(f.id);
    }
  }

  // Order: dependencies first, otherwise template order; a cycle is InvalidTemplate.
  const order: PlannedResource[] = [];
  const done = new Set<string>();
  while (order.length < instances.length) {
    const ready = instances.find((x) => !done.has(x.id) && x.dependsOn.every((d) => done.has(d)));
    if (!ready) {
      const stuck = instances.filter((x) => !done.has(x.id)).map((x) => `'${x.name}'`);
      throw invalid(`Circular dependency detected on resource: ${stuck.join(", ")}. ${SYNTAX_HELP}`);
    }
    order.push(ready);
    done.add(ready.id);
  }
  for (const inst of instances) {
    ev.planned.set(inst.id.toLowerCase(), inst);
    if (!ev.planned.has(inst.name.toLowerCase())) ev.planned.set(inst.name.toLowerCase(), inst);
  }

  const outputs = tpl.outputs ?? {};
  if (!isObject(outputs)) throw invalid(`The template 'outputs' must be an object. ${SYNTAX_HELP}`, "outputs");
  for (const [name, o] of Object.entries(outputs)) {
    if (!isObject(o) || typeof o.type !== "string" || !PARAM_TYPES[o.type.toLowerCase()]) throw invalid(`The template output '${name}' must have a 'type' of ${Object.values(PARAM_TYPES).join(", ")}.`, `outputs.${name}`);
    if (o.copy !== undefined) throw invalid(`The template output '${name}' uses 'copy', which is ${UNSUPPORTED}.`, `outputs.${name}.copy`);
  }
  return { parameters: record, resources: order, evaluator: ev, outputs };
}

const KNOWN_SPECIAL = new Set(["if", "parameters", "variables", "copyindex", "reference"]);

function checkFunctions(tpl: Obj, ev: TemplateEvaluator): void {
  const visitExpr = (e: Expr, path: string) => {
    if (e.kind === "call") {
      if (!KNOWN_SPECIAL.has(e.name.toLowerCase()) && !ev.functions.has(e.name.toLowerCase())) {
        const hint = /^list/i.test(e.name) ? " (list* functions are not supported)" : "";
        throw invalid(`The template function '${e.name}' at '${path}' is not valid${hint}: it is ${UNSUPPORTED}. Please see https://aka.ms/arm-functions for usage details.`, path);
      }
      e.args.forEach((a) => visitExpr(a, path));
    } else if (e.kind === "member") visitExpr(e.object, path);
    else if (e.kind === "index") {
      visitExpr(e.object, path);
      visitExpr(e.index, path);
    }
  };
  const visit = (v: Value, path: string) => {
    if (typeof v === "string" && isExpression(v)) {
      let e: Expr;
      try {
        e = parseExpression(v);
      } catch (err) {
        if (err instanceof ExpressionError) throw invalid(`The template language expression '${v}' at '${path}' is not valid: ${err.message}`, path);
        throw err;
      }
      visitExpr(e, path);
    } else if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${path}[${i}]`));
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) {
      visit(k, path);
      visit(x, path ? `${path}.${k}` : k);
    }
  };
  visit(tpl, "");
}

/**
 * A nested deployment the engine runs: an inline `properties.template` evaluated in its own
 * (inner) scope. The outer scope (the parent's parameters and variables seen inside the inner
 * template) and linked templates are refused, naming the property.
 */
function checkNestedDeployment(r: Obj, path: string): void {
  const props = r[Object.keys(r).find((k) => k.toLowerCase() === "properties") ?? ""];
  if (!isObject(props)) throw invalid(`The nested deployment at '${path}' has no 'properties'. ${SYNTAX_HELP}`, path);
  const get = (o: Obj, k: string) => o[Object.keys(o).find((x) => x.toLowerCase() === k.toLowerCase()) ?? ""];
  if (get(props, "templateLink") !== undefined) throw invalid(`The nested deployment at '${path}' uses 'templateLink', which is ${UNSUPPORTED}; put the template inline.`, `${path}.properties.templateLink`);
  if (!isObject(get(props, "template") as Value)) throw invalid(`The nested deployment at '${path}' has no inline 'template'. ${SYNTAX_HELP}`, `${path}.properties`);
  const options = get(props, "expressionEvaluationOptions");
  const scope = isObject(options as Value) ? get(options as Obj, "scope") : undefined;
  if (typeof scope !== "string" || scope.toLowerCase() !== "inner") {
    throw invalid(`The nested deployment at '${path}' evaluates its template in the outer scope, which is ${UNSUPPORTED}; set properties.expressionEvaluationOptions.scope to 'inner' (as Bicep modules do).`, `${path}.properties`);
  }
}

/** The body ARM sends to the provider: the resource JSON without the template-only properties. */
async function resourceBody(ev: TemplateEvaluator, r: PlannedResource): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.json)) {
    if (RESOURCE_META.has(k.toLowerCase())) continue;
    if (r.type.toLowerCase() === NESTED_DEPLOYMENT && k.toLowerCase() === "properties" && isObject(v)) {
      // The inner template's expressions are the nested deployment's own: passed on unevaluated.
      const props: Obj = {};
      for (const [pk, pv] of Object.entries(v)) props[pk] = pk.toLowerCase() === "template" ? pv : await ev.value(pv);
      out[k] = props;
      continue;
    }
    out[k] = await ev.value(v);
  }
  return out;
}

export interface OperationEvents {
  started?(r: PlannedResource): void;
  finished?(r: PlannedResource, result: { ok: true; status: number } | { ok: false; status: number; error: ArmError }): void;
}

/** Deploys a validated template: resources in order through `io`, then the outputs. */
export async function deployTemplate(v: ValidatedTemplate, io: ResourceIO, deploymentId: string, events: OperationEvents = {}): Promise<{ outputs: Record<string, { type: string; value?: unknown }>; outputResources: Array<{ id: string }> }> {
  const ev = v.evaluator;
  ev.io = io;
  ev.phase = "deploy";
  const outputResources: Array<{ id: string }> = [];
  const failed = (details: ArmError[]) =>
    new TemplateDeploymentError({
      code: "DeploymentFailed",
      target: deploymentId,
      message: "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
      details,
    });
  for (const r of v.resources) {
    if (r.copy) {
      ev.copyIndexes.set(r.copy.name.toLowerCase(), r.copy.index);
      ev.copyIndexes.set("", r.copy.index);
    }
    events.started?.(r);
    let body: Record<string, unknown>;
    try {
      body = await resourceBody(ev, r);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
      const error = { code: "InvalidTemplate", message: `Unable to process template language expressions for resource '${r.id}' at line '${e.pos.line}' and column '${e.pos.column}'. '${e.message}'` };
      events.finished?.(r, { ok: false, status: 400, error });
      throw failed([error]);
    } finally {
      ev.copyIndexes.clear();
    }
    try {
      const returned = await io.put(r.id, r.apiVersion, body);
      ev.deployed.set(r.id.toLowerCase(), returned);
      outputResources.push({ id: r.id });
      events.finished?.(r, { ok: true, status: 200 });
    } catch (e) {
      if (!(e instanceof ProviderError)) throw e;
      events.finished?.(r, { ok: false, status: e.status, error: e.error });
      throw failed([e.error]);
    }
  }
  const outputs: Record<string, { type: string; value?: unknown }> = {};
  for (const [name, o] of Object.entries(v.outputs) as Array<[string, Obj]>) {
    const t = (o.type as string).toLowerCase();
    const outputFailed = (message: string) =>
      new TemplateDeploymentError({
        code: "DeploymentOutputEvaluationFailed",
        message: `Unable to evaluate template outputs: '${name}'. Please see error details and deployment operations. Please see https://aka.ms/arm-common-errors for usage details.`,
        details: [{ code: "DeploymentOutputEvaluationFailed", target: name, message: `The template output '${name}' is not valid: ${message}` }],
      });
    let value: Value;
    try {
      if (o.condition !== undefined && (await ev.value(o.condition)) === false) continue;
      value = await ev.value(o.value ?? null);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
      throw outputFailed(e.message);
    }
    if (!hasType(value, t)) throw outputFailed(`Expected a value of type '${PARAM_TYPES[t]}', but received a value of type '${typeName(value)}'.`);
    outputs[name] = t.startsWith("secure") ? { type: PARAM_TYPES[t] } : { type: PARAM_TYPES[t], value };
  }
  return { outputs, outputResources };
}

export type { TemplateEvaluator };
