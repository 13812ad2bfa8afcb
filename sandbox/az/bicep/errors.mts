// The evaluator's errors: BicepSyntaxError (file:line:column) for source outside the subset,
// DeploymentError for what ARM would reject or report as failed, and ExpressionError for a
// template expression that fails while being evaluated (reported by ARM at run time).
import type { ArmError, Pos } from "./types.mts";

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

/** A deployment that ARM would reject (InvalidTemplate) or that failed (DeploymentFailed, ...); `code` = ARM's code. */
export class DeploymentError extends BicepError {
  error: ArmError;
  /** Resources already put when the deployment failed. */
  resourceIds: string[];
  constructor(error: ArmError, resourceIds: string[] = []) {
    super(error.message, error.code);
    this.name = "DeploymentError";
    this.error = error;
    this.resourceIds = resourceIds;
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

export const UNSUPPORTED = "not supported by the sandbox's Bicep evaluator";
