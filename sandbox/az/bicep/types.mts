// The Bicep subset's public types: values, the syntax tree the parser builds (expressions and
// declarations with their positions), and what deployBicep() takes and returns.

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

export interface DeploymentContext {
  subscriptionId: string;
  tenantId: string;
  resourceGroup: { id: string; name: string; location: string };
  deployer: { objectId: string; tenantId: string };
  deploymentName: string;
}
export interface DeployBicepOptions {
  source: string;
  fileName: string;
  /** Plain values (not `{value}` wrappers), keyed by parameter name (matched case-insensitively, as ARM does). */
  parameters: Record<string, unknown>;
  context: DeploymentContext;
  /** PUT `id` at `apiVersion`; resolves to the resource as the provider returns it. Errors may carry `armError: {code, message}`. */
  putResource(id: string, apiVersion: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** GET `id` (for `existing` resources). */
  getResource(id: string, apiVersion: string): Promise<Record<string, unknown>>;
}
export interface DeployBicepResult {
  outputs: Record<string, { type: string; value: unknown }>;
  /** Ids of the resources put, in the order they were put (existing resources are not included). */
  resourceIds: string[];
  /** Every template parameter with its effective value, the way ARM records them (secure ones without value). */
  parameters: Record<string, { type: string; value?: unknown }>;
}

/** ARM's error object, as in `{"error": {...}}` bodies and deployment errors. */
export interface ArmError {
  code: string;
  message: string;
  target?: string;
  details?: ArmError[];
  additionalInfo?: unknown[];
}
