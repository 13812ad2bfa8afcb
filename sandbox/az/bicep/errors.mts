// The Bicep subset's errors: BicepSyntaxError (file:line:column) for source outside the subset,
// and ExpressionError for a template expression that fails while being evaluated (the ARM
// emulator's template engine reports these in ARM's words).
import type { Pos } from "./types.mts";

/** Base class; `code` is stable. */
export class BicepError extends Error {
  code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BicepError";
    this.code = code;
  }
}

/** Source the evaluator cannot parse or does not support, with its position (`file:line:column: ...`). */
export class BicepSyntaxError extends BicepError {
  fileName: string;
  line: number;
  column: number;
  constructor(fileName: string, pos: Pos, message: string) {
    super(`${fileName}:${pos.line}:${pos.column}: ${message}`, "ERR_BICEP_SYNTAX");
    this.name = "BicepSyntaxError";
    this.fileName = fileName;
    this.line = pos.line;
    this.column = pos.column;
  }
}

/** A template language expression that failed while being evaluated (ARM reports these at run time). */
export class ExpressionError extends Error {
  pos: Pos;
  constructor(pos: Pos, message: string) {
    super(message);
    this.pos = pos;
  }
}

export const UNSUPPORTED = "not supported by the sandbox's Bicep compiler";
