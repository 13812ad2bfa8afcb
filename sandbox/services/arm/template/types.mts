// The template language's types, shared by ARM's template engine and the az stand-in's Bicep
// compiler: values, the expression syntax tree (with positions), and ARM's error object.

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
export type ObjectExpr = Extract<Expr, { kind: "object" }>;
export type CallExpr = Extract<Expr, { kind: "call" }>;

/** ARM's error object, as in `{"error": {...}}` bodies and deployment errors. */
export interface ArmError {
  code: string;
  message: string;
  target?: string;
  details?: ArmError[];
  additionalInfo?: unknown[];
}
