// The Bicep subset's public types: its declarations with their positions. Values, expressions
// and ARM's error object are the template language's (ARM's engine, services/arm/template/types.mts).
import type { Expr, ObjectExpr, Pos, Value } from "../../services/arm/template/types.mts";
export type { ArmError, CallExpr, Expr, ObjectExpr, ObjectProp, Pos, Value } from "../../services/arm/template/types.mts";

export type BicepType = "string" | "int" | "bool" | "object" | "array";
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
  /** A module: its path as written, and its parsed file (set by parseBicep). */
  module?: { path: string; pos: Pos; template?: BicepTemplate };
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
