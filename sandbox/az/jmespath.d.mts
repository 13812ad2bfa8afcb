// Types for the parts of the `jmespath` package (jmespath.js 0.16, which ships none) that
// sandbox/az/query.mts uses. The package is CommonJS; its default export is the exports object.

/** A node of jmespath.js's syntax tree: `children` are nodes, or numbers and nulls in a "Slice". */
export interface JmesPathNode {
  type: string;
  name?: string;
  /** An "Index"'s number, a "Literal"'s value, or a "KeyValuePair"'s node. */
  value?: unknown;
  children?: unknown[];
}

/** A token of jmespath.js's lexer; `start` is its offset in the expression. */
export interface JmesPathToken {
  type: string;
  value: unknown;
  start: number;
}

declare const jmespath: {
  /** Evaluates `expression` against `data`; throws on a bad expression or a failing function call. */
  search(data: unknown, expression: string): unknown;
  /** Parses `expression`; throws (LexerError, ParserError, SyntaxError, …) when it is not valid. */
  compile(expression: string): JmesPathNode;
  tokenize(expression: string): JmesPathToken[];
};
export default jmespath;
