// The template language's evaluation error, shared by ARM's template engine and the az
// stand-in's Bicep compiler.
import type { Pos } from "./types.mts";

/** A template language expression that failed while being evaluated (ARM reports these at run time). */
export class ExpressionError extends Error {
  pos: Pos;
  constructor(pos: Pos, message: string) {
    super(message);
    this.pos = pos;
  }
}
