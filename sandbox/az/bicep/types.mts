// The Bicep subset's public types: values, the syntax tree the parser builds (expressions and
// declarations with their positions), and ARM's error object.

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
export type ObjectExpr = Extract<Expr, { kind: "object" }>;
export type CallExpr = Extract<Expr, { kind: "call" }>;

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
  /** `= if (cond) {…}`: deployed only when cond is true (ARM's `condition`). */
  condition?: Expr;
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

/** ARM's error object, as in `{"error": {...}}` bodies and deployment errors. */
export interface ArmError {
  code: string;
  message: string;
  target?: string;
  details?: ArmError[];
  additionalInfo?: unknown[];
}
