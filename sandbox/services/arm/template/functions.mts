// Built-in template functions: the pure ones (string, array, object, logical and conversion
// functions, uniqueString, guid) with their argument checks, the argument counts of the
// deployment-dependent ones (implemented by the evaluator), and ARM's value helpers. Shared by
// ARM's template engine (engine.mts) and the az stand-in's Bicep compiler (sandbox/az/bicep/checks.mts).
import { createHash } from "node:crypto";
import { ExpressionError } from "./errors.mts";
import type { CallExpr, Pos, Value } from "./types.mts";

const UNSUPPORTED = "not supported by the sandbox's template functions";

type Fn = (args: Value[], call: CallExpr) => Value;
export interface FnSpec {
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
  environment: [0, 0],
};

export function typeName(v: Value | undefined): string {
  if (v === null || v === undefined) return "Null";
  if (typeof v === "string") return "String";
  if (typeof v === "number") return Number.isInteger(v) ? "Integer" : "Float";
  if (typeof v === "boolean") return "Boolean";
  if (Array.isArray(v)) return "Array";
  return "Object";
}

export function isObject(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function deepEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** ARM's string conversion: booleans are .NET's True/False, objects and arrays compact JSON. */
export function toText(v: Value): string {
  if (v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return String(v);
  return JSON.stringify(v);
}

export function fnError(call: CallExpr, message: string): never {
  throw new ExpressionError(call.pos, `The template function '${call.name}' is not valid: ${message}`);
}
export function str(call: CallExpr, v: Value, which = "its arguments"): string {
  if (typeof v !== "string") fnError(call, `${which} must be of type 'String', not '${typeName(v)}'.`);
  return v;
}
function _int(call: CallExpr, v: Value, which = "its arguments"): number {
  if (typeof v !== "number" || !Number.isInteger(v)) fnError(call, `${which} must be of type 'Integer', not '${typeName(v)}'.`);
  return v;
}
function _strOrArray(call: CallExpr, v: Value): string | Value[] {
  if (typeof v !== "string" && !Array.isArray(v)) fnError(call, `expects a string or an array, not '${typeName(v)}'.`);
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
    for (const a of args as Value[][]) for (const x of a) if (!out.some((y) => deepEqual(x, y))) out.push(x);
    return out;
  }
  if (args.every(isObject)) {
    const merge = (a: { [k: string]: Value }, b: { [k: string]: Value }) => {
      const out: { [k: string]: Value } = { ...a };
      for (const [k, v] of Object.entries(b)) out[k] = isObject(out[k]) && isObject(v) ? merge(out[k] as { [k: string]: Value }, v) : v;
      return out;
    };
    return (args as { [k: string]: Value }[]).reduce(merge, {});
  }
  fnError(call, "expects all arguments to be arrays or all to be objects.");
}

export const PURE_FUNCTIONS: Record<string, FnSpec> = {
  toLower: { min: 1, max: 1, fn: ([s], c) => str(c, s).toLowerCase() },
  toUpper: { min: 1, max: 1, fn: ([s], c) => str(c, s).toUpperCase() },
  trim: { min: 1, max: 1, fn: ([s], c) => str(c, s).trim() },
  concat: {
    min: 1, max: Infinity, fn: (args, c) => {
      if (args.every(Array.isArray)) return (args as Value[][]).flat(1);
      if (args.some((a) => isObject(a) || Array.isArray(a))) fnError(c, "expects all arguments to be arrays, or all to be strings or integers.");
      return args.map(toText).join("");
    },
  },
  format: {
    min: 1, max: Infinity, fn: ([f, ...rest], c) =>
      str(c, f, "the format string").replace(/\{\{|\}\}|\{(\d+)(?:,-?\d+)?(:[^}]*)?\}/g, (m, n: string | undefined, spec: string | undefined) => {
        if (m === "{{") return "{";
        if (m === "}}") return "}";
        if (spec) throw new ExpressionError(c.pos, `The format specifier '${spec.slice(1)}' in format() is ${UNSUPPORTED}`);
        const i = Number(n);
        if (i >= rest.length) fnError(c, `the format string refers to argument {${i}} but only ${rest.length} argument(s) follow it.`);
        return toText(rest[i]);
      }),
  },
  substring: {
    min: 2, max: 3, fn: ([s, start, len], c) => {
      const text = str(c, s);
      const from = _int(c, start, "the index");
      const n = len === undefined ? text.length - from : _int(c, len, "the length");
      if (from < 0 || n < 0 || from + n > text.length) {
        throw new ExpressionError(c.pos, `The index and length parameters must refer to a location within the string. The index parameter: '${from}', the length parameter: '${n}', the length of the string parameter: '${text.length}'.`);
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
      if (isObject(x)) return Object.keys(x).length;
      fnError(c, `expects a string, an array or an object, not '${typeName(x)}'.`);
    },
  },
  replace: { min: 3, max: 3, fn: ([s, a, b], c) => str(c, s).split(str(c, a)).join(str(c, b)) },
  split: {
    min: 2, max: 2, fn: ([s, d], c) => {
      const text = str(c, s);
      const delims = Array.isArray(d) ? d.map((x) => str(c, x, "the delimiters")) : [str(c, d, "the delimiter")];
      let parts = [text];
      for (const delim of delims) parts = parts.flatMap((p) => p.split(delim));
      return parts;
    },
  },
  join: {
    min: 2, max: 2, fn: ([a, d], c) => {
      if (!Array.isArray(a)) fnError(c, `expects an array as its first argument, not '${typeName(a)}'.`);
      return a.map(toText).join(str(c, d, "the delimiter"));
    },
  },
  contains: {
    min: 2, max: 2, fn: ([container, item], c) => {
      if (typeof container === "string") return container.includes(toText(item));
      if (Array.isArray(container)) return container.some((x) => deepEqual(x, item));
      if (isObject(container)) {
        const key = toText(item).toLowerCase();
        return Object.keys(container).some((k) => k.toLowerCase() === key);
      }
      fnError(c, `expects a string, an array or an object, not '${typeName(container)}'.`);
    },
  },
  empty: {
    min: 1, max: 1, fn: ([x]) => x === null || x === "" || (Array.isArray(x) && x.length === 0) || (isObject(x) && Object.keys(x).length === 0),
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
  string: { min: 1, max: 1, fn: ([x]) => toText(x) },
  int: {
    min: 1, max: 1, fn: ([x], c) => {
      if (typeof x === "number" && Number.isInteger(x)) return x;
      if (typeof x === "string" && /^\s*[+-]?\d+\s*$/.test(x)) return parseInt(x, 10);
      fnError(c, `cannot convert '${toText(x)}' to an integer.`);
    },
  },
  bool: {
    min: 1, max: 1, fn: ([x], c) => {
      if (typeof x === "boolean") return x;
      if (typeof x === "string" && /^(true|false)$/i.test(x)) return x.toLowerCase() === "true";
      if (x === 0 || x === 1) return x === 1;
      fnError(c, `cannot convert '${toText(x)}' to a boolean.`);
    },
  },
  json: {
    min: 1, max: 1, fn: ([x], c) => {
      try {
        return JSON.parse(str(c, x)) as Value;
      } catch {
        fnError(c, "its argument is not valid JSON.");
      }
    },
  },
  startsWith: { min: 2, max: 2, fn: ([s, p], c) => str(c, s).toLowerCase().startsWith(str(c, p).toLowerCase()) },
  endsWith: { min: 2, max: 2, fn: ([s, p], c) => str(c, s).toLowerCase().endsWith(str(c, p).toLowerCase()) },
  indexOf: { min: 2, max: 2, fn: ([s, p], c) => str(c, s).toLowerCase().indexOf(str(c, p).toLowerCase()) },
  lastIndexOf: { min: 2, max: 2, fn: ([s, p], c) => str(c, s).toLowerCase().lastIndexOf(str(c, p).toLowerCase()) },
  base64: { min: 1, max: 1, fn: ([s], c) => Buffer.from(str(c, s), "utf8").toString("base64") },
  base64ToString: { min: 1, max: 1, fn: ([s], c) => Buffer.from(str(c, s), "base64").toString("utf8") },
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
  uniqueString: { min: 1, max: Infinity, fn: (args, c) => uniqueString(...args.map((a) => str(c, a))) },
  guid: { min: 1, max: Infinity, fn: (args, c) => guid(...args.map((a) => str(c, a))) },
};

export const FUNCTION_ARITY = new Map<string, [number, number]>([
  ...Object.entries(PURE_FUNCTIONS).map(([name, spec]): [string, [number, number]] => [name, [spec.min, spec.max]]),
  ...Object.entries(CONTEXT_FUNCTIONS),
]);

export function arityProblem(name: string, count: number): string | undefined {
  const [min, max] = FUNCTION_ARITY.get(name)!;
  if (count >= min && count <= max) return undefined;
  const expected = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
  return `The function '${name}' expects ${expected} argument(s), got ${count}.`;
}

/** 'Microsoft.KeyVault/vaults/keys' + ['v', 'k'] -> 'Microsoft.KeyVault/vaults/v/keys/k'. */
export function typedPath(type: string, names: string[], at: Pos, what: string): string {
  const segs = type.split("/");
  if (names.length !== segs.length - 1) {
    throw new ExpressionError(at, `The ${what} '${names.join("/")}' for type '${type}' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name.`);
  }
  let out = segs[0];
  for (let i = 1; i < segs.length; i++) out += `/${segs[i]}/${names[i - 1]}`;
  return out;
}
