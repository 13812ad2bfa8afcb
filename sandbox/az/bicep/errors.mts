// The Bicep subset's errors: BicepSyntaxError (file:line:column) for source outside the subset.
// (ExpressionError, a template expression that fails while being evaluated, is the template
// language's: services/arm/template/errors.mts.)
import type { Pos } from "./types.mts";
export { ExpressionError } from "../../services/arm/template/errors.mts";

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


export const UNSUPPORTED = "not supported by the sandbox's Bicep compiler";
