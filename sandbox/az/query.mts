/**
 * az's `--query` for the az stand-in: JMESPath by the `jmespath` package, with az's messages.
 *
 * az evaluates `--query` with the Python `jmespath` package (1.0), which implements the JMESPath
 * specification; jmespath.js is that specification's JavaScript implementation by the same
 * authors, against the same compliance tests. @jmespath-community/jmespath is typed and more
 * active, but implements the community edition, a superset az does not have: it evaluates what
 * az rejects (`$`, `let`, arithmetic, `items()`, `group_by()`, slices of strings), refuses az's
 * legacy `` `foo` `` literals and answers `'b' > 'a'` with false where az says true.
 *
 * What this wrapper adds to jmespath.js:
 * - the strictness jmespath.py has at compile time: a dot with nothing after it (`a.`, `a..b`),
 *   a number that is not one (`[-]`, `[1-2]`) and an unterminated `'…'` or `` `…` `` are invalid
 *   expressions, as in az, where jmespath.js would evaluate them;
 * - az's messages and exit codes: an invalid expression is argparse's error (exit 2, before the
 *   command runs), a failing evaluation (unknown function, argument count or type) is az's
 *   "Invalid jmespath query" (exit 1), each followed by az's pointer to the --query docs;
 * - the data is copied into objects without a prototype, so that `constructor` or `toString` are
 *   fields like any other (null when missing) instead of Object.prototype's;
 * - the objects a query builds are recorded in `orderedObjects`: az builds multi-select hashes as
 *   OrderedDicts, which its tsv output prints in their own key order, not sorted.
 *
 * Known differences, left as they are: ordering comparisons (`<`, `>=`, …) with a null, boolean,
 * array or object operand follow JavaScript (jmespath.py: null), a number compared with a string
 * is false (az: an unexpected error), max_by() and min_by() with string keys give null (an
 * element), `to_number('')` is 0 (null), a raw string keeps every `\'` after the first, type
 * errors keep jmespath.js's wording, and merge() results and literal objects count as built (az
 * sorts their keys in tsv).
 *
 * @example
 * compileQuery("[?isDefault].id")([{ id: "a", isDefault: true }]) // ["a"]
 */
// @ts-types="./jmespath.d.mts"
import jmespath from "jmespath";
import type { JmesPathNode } from "./jmespath.d.mts";

/** What az prints after a bad --query (azure.cli.core.util.QUERY_REFERENCE; az 2.45 still named docs.microsoft.com). */
const QUERY_REFERENCE = "To learn more about --query, please visit: 'https://learn.microsoft.com/cli/azure/query-azure-cli'";

/** A --query az refuses: `message` is what az prints after `ERROR: `, `exitCode` how it exits. */
export class QueryError extends Error {
  static code = "ERR_AZ_QUERY";
  code = "ERR_AZ_QUERY";
  exitCode = 1;
}

/** Not a JMESPath expression: argparse's error for --query, before the command runs (exit 2). */
export class InvalidQueryError extends QueryError {
  static override code = "ERR_AZ_QUERY_INVALID";
  override code = "ERR_AZ_QUERY_INVALID";
  override exitCode = 2;
  constructor(expression: string, options?: { cause?: unknown }) {
    super(`argument --query: invalid jmespath_type value: ${_pythonRepr(expression)}\n${QUERY_REFERENCE}`, options);
    this.name = "InvalidQueryError";
  }
}

/** The expression failed on the command's result (a function's arguments): exit 1. */
export class QueryEvaluationError extends QueryError {
  static override code = "ERR_AZ_QUERY_EVALUATION";
  override code = "ERR_AZ_QUERY_EVALUATION";
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`Invalid jmespath query supplied for \`--query\`: ${detail}\n${QUERY_REFERENCE}`, options);
    this.name = "QueryEvaluationError";
  }
}

/** Objects a query built (multi-select hashes): az keeps their key order in tsv output. */
export const orderedObjects = new WeakSet<object>();

/**
 * Checks `expression` as az does while parsing its arguments (throws InvalidQueryError) and
 * returns the function that applies it (throws QueryEvaluationError).
 */
export function compileQuery(expression: string): (data: unknown) => unknown {
  let ast: JmesPathNode;
  try {
    ast = jmespath.compile(expression);
  } catch (e) {
    throw new InvalidQueryError(expression, { cause: e });
  }
  if (_hasGap(ast) || _hasLexicalSlip(expression)) throw new InvalidQueryError(expression);
  return (data) => {
    const input = new WeakSet<object>();
    let result: unknown;
    try {
      result = jmespath.search(_copyWithoutPrototypes(data, input), expression);
    } catch (e) {
      throw new QueryEvaluationError(_pythonWording(e instanceof Error ? e.message : String(e)), { cause: e });
    }
    _recordBuilt(result, input);
    return result;
  };
}

/** jmespath.js leaves a hole in the tree where jmespath.py finds a dot without a right side. */
function _hasGap(node: unknown): boolean {
  if (node === null || node === undefined) return true;
  const n = node as JmesPathNode;
  if (n.type === "Slice") return false; // its children are numbers or null
  if (n.type === "KeyValuePair") return _hasGap(n.value);
  return (n.children ?? []).some(_hasGap);
}

/** Tokens jmespath.js reads leniently: numbers from any run of digits and dashes, literals without an end. */
function _hasLexicalSlip(expression: string): boolean {
  return jmespath.tokenize(expression).some((token) => {
    if (token.type === "Number") return !/^-?\d+$/.test(/^[0-9-]*/.exec(expression.slice(token.start))![0]);
    const quote = expression[token.start];
    if (token.type !== "Literal" || (quote !== "'" && quote !== "`")) return false;
    // The lexer's own loop: a backslash escapes the quote or another backslash.
    let i = token.start + 1;
    while (i < expression.length && expression[i] !== quote) {
      i += expression[i] === "\\" && (expression[i + 1] === "\\" || expression[i + 1] === quote) ? 2 : 1;
    }
    return i >= expression.length;
  });
}

/** jmespath.py's words for the failures jmespath.js describes with the same facts. */
function _pythonWording(message: string): string {
  const arity = /^ArgumentError: (\w+)\(\) takes (at least ?)?(\d+) arguments? but received (\d+)$/.exec(message);
  if (!arity) return message;
  const [, name, atLeast, expected, received] = arity;
  return `Expected ${atLeast ? "at least " : ""}${expected} argument${expected === "1" ? "" : "s"} for function ${name}(), received ${received}`;
}

/** argparse prints the rejected value with Python's repr() (ASCII control characters escaped). */
function _pythonRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escapes: Record<string, string> = { "\\": "\\\\", [quote]: `\\${quote}`, "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  const body = [...text].map((c) => escapes[c] ?? (c < " " || c === "\x7f" ? hex(c) : c)).join("");
  return `${quote}${body}${quote}`;
}

function _copyWithoutPrototypes(value: unknown, copies: WeakSet<object>): unknown {
  if (value === null || typeof value !== "object") return value;
  let copy: unknown[] | Record<string, unknown>;
  if (Array.isArray(value)) copy = value.map((x) => _copyWithoutPrototypes(x, copies));
  else {
    copy = Object.create(null) as Record<string, unknown>;
    for (const [k, x] of Object.entries(value)) copy[k] = _copyWithoutPrototypes(x, copies);
  }
  copies.add(copy);
  return copy;
}

function _recordBuilt(value: unknown, input: WeakSet<object>): void {
  if (value === null || typeof value !== "object" || input.has(value)) return;
  if (!Array.isArray(value)) orderedObjects.add(value);
  for (const x of Object.values(value)) _recordBuilt(x, input);
}
