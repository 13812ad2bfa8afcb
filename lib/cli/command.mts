// What every script shares: strict argument parsing, exit codes and one-line error messages.
// Returns strings and numbers; the scripts do the printing. Kept free of SDK imports so
// `--help` stays fast.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { InputError, MeteringError, UsageError } from "../core/errors.mts";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Bad rows listed in a message before "… and N more". */
export const MAX_PROBLEMS_SHOWN = 20;

// `-1`, `-0.5`, `-.5`, `-1e3`: a negative number, which parseArgs would take for a flag.
const NEGATIVE_NUMBER_RE = /^-(\d|\.\d)/;

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

/** The flags every script takes. */
const COMMON_OPTIONS = {
  help: { type: "boolean", short: "h" },
  verbose: { type: "boolean", short: "v" },
} as const satisfies OptionsConfig;

/**
 * Parses argv strictly: unknown flags, missing flag values and a wrong number of
 * positionals throw UsageError. `--help` short-circuits the positional count check.
 * A token that looks like a negative number (`-1`, `-0.5`) is a value, never a flag: a
 * positional, or the value of the string flag before it, so the script can say what is
 * wrong with the value instead of "Unknown option '-1'".
 */
export function parseCommandLine<O extends OptionsConfig>(options: {
  args: string[];
  options: O;
  /** Names of the required positionals, in order; a function picks them from the flags given. */
  positionals?: string[] | ((values: Record<string, string | boolean | undefined>) => string[]);
  /** Names of positionals that may follow the required ones (any leading part of them). */
  optionalPositionals?: string[];
}): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  // Hidden from parseArgs behind placeholders that cannot start with "-", then put back.
  const numbers = new Map<string, string>();
  const args = options.args.map((arg, i) => {
    if (!NEGATIVE_NUMBER_RE.test(arg)) return arg;
    const placeholder = `\u0000${i}`;
    numbers.set(placeholder, arg);
    return placeholder;
  });
  const restore = <T,>(v: T): T => (typeof v === "string" && numbers.has(v) ? numbers.get(v) as T : v);
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...COMMON_OPTIONS, ...options.options }, strict: true, allowPositionals: true });
  } catch (cause) {
    throw new UsageError(`Cannot parse arguments: ${String((cause as Error).message).split("\n")[0].replace(/\. To specify a positional.*$/, "")}`, { cause });
  }
  const values = Object.fromEntries(Object.entries(parsed.values).map(([k, v]) => [k, Array.isArray(v) ? v.map(restore) : restore(v)])) as Record<string, string | boolean | undefined>;
  parsed.positionals = parsed.positionals.map(restore);
  const names = (typeof options.positionals === "function" ? options.positionals(values) : options.positionals) ?? [];
  const optional = options.optionalPositionals ?? [];
  const count = parsed.positionals.length;
  if (!values.help && (count < names.length || count > names.length + optional.length)) {
    const want = names.length + optional.length === 0
      ? "no arguments"
      : [...names.map((n) => `<${n}>`), ...optional.map((n) => `[${n}]`)].join(" ");
    throw new UsageError(`Cannot run: expected ${want}, got ${count} argument(s)`);
  }
  return { values, positionals: parsed.positionals };
}

/**
 * Refuses options given to a command they do not belong to: `belong` maps each command to its
 * own options. Throws `Cannot run send: --max, --wait belong to receive` (a UsageError, exit 2;
 * `belongs` for one).
 */
export function assertOptionsBelong(values: Record<string, unknown>, command: string, belong: Record<string, readonly string[]>): void {
  for (const [other, names] of Object.entries(belong)) {
    if (other === command) continue;
    const given = names.filter((n) => values[n] !== undefined && !(belong[command] ?? []).includes(n));
    if (given.length) throw new UsageError(`Cannot run ${command}: ${given.map((n) => `--${n}`).join(", ")} ${given.length === 1 ? "belongs" : "belong"} to ${other}`);
  }
}

/** Exit code for an error: 2 for usage and input errors (nothing changed), else 1. */
export function exitCodeFor(error: unknown): number {
  const code = (error as MeteringError)?.code;
  return code === "ERR_USAGE" || code === "ERR_INPUT" || code === "ERR_CUSTOMER_NOT_CONNECTED" || code === "ERR_CONFIG_INVALID" || code === "ERR_CONFIG_MISSING" ||
      code === "ERR_RESOURCE_NOT_FOUND" || code === "ERR_IDENTITY_MISMATCH" || code === "ERR_LEDGER_CONFLICT"
    ? EXIT_USAGE
    : EXIT_FAILED;
}

/**
 * Bad rows as lines to print, by line number: the first MAX_PROBLEMS_SHOWN and how many more.
 *
 * @example
 * formatProblems([{ line: 3, message: "not a JSON object" }]) // ["  line 3: not a JSON object"]
 */
export function formatProblems(problems: Array<{ line: number; message: string }>): string[] {
  const sorted = [...problems].sort((a, b) => a.line - b.line);
  const shown = sorted.slice(0, MAX_PROBLEMS_SHOWN).map((p) => `  line ${p.line}: ${p.message}`);
  return sorted.length > MAX_PROBLEMS_SHOWN ? [...shown, `  … and ${sorted.length - MAX_PROBLEMS_SHOWN} more`] : shown;
}

/**
 * The lines to print for an error: one actionable line by default (an input error adds its
 * bad rows); with `verbose`, the error code, detail and the cause chain (messages only, no
 * stacks unless it is a bug).
 */
export function formatError(error: unknown, options: { verbose?: boolean } = {}): string {
  const e = error as Partial<MeteringError>;
  const known = error instanceof MeteringError;
  const first = known ? String(e.message) : `Unexpected error: ${String(e?.message ?? error).split("\n")[0]}`;
  const rows = error instanceof InputError ? formatProblems(error.problems) : [];
  if (!options.verbose) return known ? [first, ...rows].join("\n") : `${first} (run again with --verbose for details)`;
  const lines = [first, ...rows];
  if (known) lines.push(`  code: ${e.code}`);
  if (known && e.detail) lines.push(...e.detail.split("\n").map((l) => `  ${l}`));
  let cause = (e as { cause?: unknown })?.cause;
  for (let depth = 0; cause && depth < 6; depth++) {
    const c = cause as Error;
    lines.push(`  caused by: ${c?.name ?? "Error"}: ${String(c?.message ?? c).split("\n").join("\n    ")}`);
    cause = (c as { cause?: unknown })?.cause;
  }
  if (!known && e?.stack) lines.push(e.stack);
  return lines.join("\n");
}

/**
 * What a script prints to stderr for an error, and its exit code: the formatted error; after
 * a usage error (a bad flag or argument) one more line points at --help. Input errors (bad
 * rows) get no such line: the arguments were fine, the data was not.
 */
export function describeFailure(error: unknown, options: { verbose?: boolean } = {}): { text: string; exitCode: number } {
  let text = `${formatError(error, options)}\n`;
  if ((error as { code?: string })?.code === "ERR_USAGE") text += "Run with --help for usage\n";
  return { text, exitCode: exitCodeFor(error) };
}

/** Error fields a JSON failure document carries besides code and message: data, never secrets or az's stderr (`detail`, which may hold it, only with --verbose, as on stderr). */
const ERROR_FIELDS = ["problems", "path", "aadsts", "oauthError", "httpStatus", "status", "url", "service", "role", "errno"] as const;

/** The JSON document a failing command prints on stdout under --json. */
export interface FailureDocument {
  ok: false;
  error: { code: string; message: string; exitCode: number; [field: string]: unknown };
}

/**
 * What a command prints on stdout for an error when `--json` was asked for: one JSON object
 * with the same exit code, so that automation always gets a document to parse.
 *
 * @example
 * failureDocument(new UsageError("Cannot use x")) // { ok: false, error: { code: "ERR_USAGE", message: "Cannot use x", exitCode: 2 } }
 */
export function failureDocument(error: unknown, options: { verbose?: boolean } = {}): FailureDocument {
  const known = error instanceof MeteringError;
  const e = (error ?? {}) as Record<string, unknown>;
  const message = known ? String(e.message) : `Unexpected error: ${String(e?.message ?? error).split("\n")[0]}`;
  const doc: FailureDocument = { ok: false, error: { code: known ? String(e.code) : "ERR_UNEXPECTED", message, exitCode: exitCodeFor(error) } };
  if (!known) return doc;
  for (const field of ERROR_FIELDS) if (e[field] !== undefined && e[field] !== "") doc.error[field] = e[field];
  if (typeof e.dueAtMs === "number") doc.error.dueAt = new Date(e.dueAtMs).toISOString();
  if (options.verbose && typeof e.detail === "string" && e.detail !== "") doc.error.detail = e.detail;
  return doc;
}

/** True when argv asks for --json (before the `--` that ends the flags). */
function asksForJson(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

/** Where a command writes: the script passes process.stdout/stderr, tests pass collectors. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS_IO: CommandIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/**
 * The frame every script shares: strict parsing, `--help`, and one line a person can act on
 * (details with --verbose) for any error, on stderr. A command that has a `--json` flag and
 * was given it also prints a failure document (failureDocument) on stdout for any error, a
 * refusal or a usage error alike, with the same exit code. Returns the exit code for
 * `process.exitCode`.
 */
export async function runCommand<O extends OptionsConfig>(options: {
  args: string[];
  usage: string;
  options: O;
  positionals?: string[] | ((values: Record<string, string | boolean | undefined>) => string[]);
  optionalPositionals?: string[];
  io?: CommandIO;
  run(parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] }): Promise<number>;
}): Promise<number> {
  const io = options.io ?? PROCESS_IO;
  // Known before parsing, so that even a parse error can be shown in detail.
  let verbose = options.args.includes("--verbose") || options.args.includes("-v");
  let json = "json" in options.options && asksForJson(options.args);
  try {
    const parsed = parseCommandLine({ args: options.args, options: options.options, positionals: options.positionals, optionalPositionals: options.optionalPositionals });
    if (parsed.values.help) {
      io.out(options.usage);
      return EXIT_OK;
    }
    verbose = parsed.values.verbose === true;
    json = "json" in options.options && parsed.values.json === true;
    return await options.run(parsed);
  } catch (error) {
    const failure = describeFailure(error, { verbose });
    if (json) io.out(`${JSON.stringify(failureDocument(error, { verbose }), null, 2)}\n`);
    io.err(failure.text);
    return failure.exitCode;
  }
}
