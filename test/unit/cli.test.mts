import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeFailure, exitCodeFor, failureDocument, formatError, formatProblems, MAX_PROBLEMS_SHOWN, parseCommandLine, runCommand } from "../../lib/cli/command.mts";
import { AzError, ConfigInvalidError, CustomerNotConnectedError, FederationError, InputError, RotationNotDueError, UsageError } from "../../lib/core/errors.mts";

const parse = suite("parseCommandLine()");
const options = { json: { type: "boolean" }, name: { type: "string" } } as const;

parse("returns values and positionals", () => {
  const { values, positionals } = parseCommandLine({ args: ["a", "--json", "b", "--name", "x"], options, positionals: ["one", "two"] });
  assert.is(values.json, true);
  assert.is(values.name, "x");
  assert.equal(positionals, ["a", "b"]);
});
parse("rejects an unknown flag as a usage error", () => {
  try {
    parseCommandLine({ args: ["--bogus"], options });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as Error).message, "Cannot parse arguments: Unknown option '--bogus'");
  }
});
parse("rejects a wrong number of positionals", () => {
  try {
    parseCommandLine({ args: ["a"], options, positionals: ["one", "two"] });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as Error).message, "Cannot run: expected <one> <two>, got 1 argument(s)");
  }
});
parse("optional positionals may be left off from the end; more than all of them is an error", () => {
  const optionalPositionals = ["sub", "rg"];
  assert.equal(parseCommandLine({ args: [], options, optionalPositionals }).positionals, []);
  assert.equal(parseCommandLine({ args: ["a"], options, optionalPositionals }).positionals, ["a"]);
  assert.equal(parseCommandLine({ args: ["a", "b"], options, optionalPositionals }).positionals, ["a", "b"]);
  try {
    parseCommandLine({ args: ["a", "b", "c"], options, optionalPositionals });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as Error).message, "Cannot run: expected [sub] [rg], got 3 argument(s)");
  }
});
parse("takes a negative number for a positional, not for an unknown flag", () => {
  const { values, positionals } = parseCommandLine({ args: ["a", "-1", "-0.5", "-.5", "-1e3", "-v"], options, positionals: ["a", "b", "c", "d", "e"] });
  assert.equal(positionals, ["a", "-1", "-0.5", "-.5", "-1e3"]);
  assert.is(values.verbose, true, "a real short flag still is one");
});
parse("takes a negative number as the value of the string flag before it", () => {
  const { values, positionals } = parseCommandLine({ args: ["--name", "-2", "x"], options, positionals: ["one"] });
  assert.equal([values.name, positionals], ["-2", ["x"]]);
});
parse("still refuses a dash and a letter; a dash and a digit is a value for the script to judge", () => {
  try {
    parseCommandLine({ args: ["-x"], options, optionalPositionals: ["a"] });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as Error).message, "Cannot parse arguments: Unknown option '-x'");
  }
  assert.equal(parseCommandLine({ args: ["-1x"], options, optionalPositionals: ["a"] }).positionals, ["-1x"]);
});
parse("--help skips the positional count", () => {
  assert.is(parseCommandLine({ args: ["--help"], options, positionals: ["one"] }).values.help, true);
  assert.is(parseCommandLine({ args: ["-h"], options }).values.help, true);
});
parse.run();

const exit = suite("exitCodeFor()");
exit("2 for usage and input errors, 1 otherwise", () => {
  assert.is(exitCodeFor(new UsageError("x")), 2);
  assert.is(exitCodeFor(new InputError("x")), 2);
  assert.is(exitCodeFor(new CustomerNotConnectedError("x")), 2);
  assert.is(exitCodeFor(new ConfigInvalidError("x", { path: "p", problems: [] })), 2);
  assert.is(exitCodeFor(new FederationError("x", {})), 1);
  assert.is(exitCodeFor(new Error("x")), 1);
});
exit.run();

const format = suite("formatError()");
format("prints one line by default", () => {
  const error = new AzError("Cannot run az group create: boom", { args: [], exitCode: 1, stderr: "WARNING: x\nERROR: boom\n" });
  assert.is(formatError(error), "Cannot run az group create: boom");
});
format("adds code, detail and causes with verbose", () => {
  const error = new FederationError("Cannot get a token", { aadsts: 700213, detail: "AADSTS700213: full text", cause: new Error("inner") });
  const text = formatError(error, { verbose: true });
  assert.match(text, /^Cannot get a token\n {2}code: ERR_FEDERATION\n {2}AADSTS700213: full text\n {2}caused by: Error: inner$/);
});
format("lists an input error's bad rows by line without --verbose, the first 20 and how many more", () => {
  const problems = Array.from({ length: 23 }, (_, i) => ({ line: 30 - i, message: `bad ${30 - i}` }));
  const lines = formatError(new InputError("Cannot send u.csv: 23 bad row(s)", { problems })).split("\n");
  assert.is(lines[0], "Cannot send u.csv: 23 bad row(s)");
  assert.equal(lines.slice(1, 3), ["  line 8: bad 8", "  line 9: bad 9"]);
  assert.is(lines.length, 1 + MAX_PROBLEMS_SHOWN + 1);
  assert.is(lines.at(-1), "  … and 3 more");
  assert.match(formatError(new InputError("Cannot send", { problems: problems.slice(0, 1) }), { verbose: true }), /^Cannot send\n {2}line 30: bad 30\n {2}code: ERR_INPUT$/);
});
format("marks unexpected errors and hints at --verbose", () => {
  assert.is(formatError(new TypeError("bad\nmore")), "Unexpected error: bad (run again with --verbose for details)");
  assert.match(formatError(new TypeError("bad"), { verbose: true }), /TypeError: bad\n\s+at /);
});
format.run();

const failure = suite("describeFailure()");
failure("a usage error is its one line and a pointer to --help, never the whole usage", () => {
  assert.equal(describeFailure(new UsageError("Cannot use x")), { text: "Cannot use x\nRun with --help for usage\n", exitCode: 2 });
});
failure("an input error lists its rows and points at nothing else; other errors are their line", () => {
  assert.equal(describeFailure(new InputError("Cannot send f: 1 bad row(s)", { problems: [{ line: 4, message: "not a JSON object" }] })),
    { text: "Cannot send f: 1 bad row(s)\n  line 4: not a JSON object\n", exitCode: 2 });
  assert.equal(describeFailure(new FederationError("Cannot get a token", {})), { text: "Cannot get a token\n", exitCode: 1 });
});
failure.run();

const frame = suite("runCommand()");
const collect = () => {
  const io = { outText: "", errText: "", out(t: string) { io.outText += t; }, err(t: string) { io.errText += t; } };
  return io;
};
frame("--help prints the usage to out and never runs the command", async () => {
  const io = collect();
  let ran = false;
  const code = await runCommand({ args: ["--help"], usage: "Usage: x\n", options: {}, positionals: ["a"], io, run: async () => { ran = true; return 0; } });
  assert.is(code, 0);
  assert.is(io.outText, "Usage: x\n");
  assert.not.ok(ran);
});
frame("an unknown flag is a usage error: exit 2, one line and the --help pointer on err, the command not run", async () => {
  const io = collect();
  let ran = false;
  const code = await runCommand({ args: ["--nope"], usage: "Usage: x\n", options: {}, io, run: async () => { ran = true; return 0; } });
  assert.is(code, 2);
  assert.is(io.errText, "Cannot parse arguments: Unknown option '--nope'\nRun with --help for usage\n");
  assert.is(io.outText, "");
  assert.not.ok(ran);
});
frame("a negative number reaches the command as the positional it is", async () => {
  const io = collect();
  let seen: string[] = [];
  const code = await runCommand({ args: ["-1"], usage: "u", options: {}, positionals: ["n"], io, run: ({ positionals }) => { seen = positionals; return Promise.resolve(0); } });
  assert.equal([code, seen, io.errText], [0, ["-1"], ""]);
});
frame("passes parsed values and positionals, returns the command's exit code", async () => {
  const io = collect();
  const code = await runCommand({
    args: ["p1", "--json"], usage: "u", options: { json: { type: "boolean" } }, positionals: ["one"], io,
    run: async ({ values, positionals }) => (values.json === true && positionals[0] === "p1" ? 1 : 0),
  });
  assert.is(code, 1);
});
frame("an error thrown by the command becomes exit 1 and a message without a stack unless --verbose", async () => {
  for (const verbose of [false, true]) {
    const io = collect();
    const code = await runCommand({ args: verbose ? ["--verbose"] : [], usage: "u", options: {}, io, run: async () => { throw new Error("Cannot do it: broken"); } });
    assert.is(code, 1);
    assert.match(io.errText, /Cannot do it: broken/);
    assert.is(/\n\s+at /.test(io.errText), verbose);
  }
});
frame("under --json, any failure is also a JSON document on out, with the same exit code", async () => {
  const json = { json: { type: "boolean" } } as const;
  const cases: Array<[string[], () => Promise<number>, string, number]> = [
    [["--json"], () => Promise.reject(new RotationNotDueError("Cannot retire the old key yet", { dueAtMs: Date.UTC(2030, 0, 1) })), "ERR_ROTATION_NOT_DUE", 1],
    [["--json", "--nope"], () => Promise.resolve(0), "ERR_USAGE", 2],
    [["--json"], () => Promise.reject(new InputError("Cannot use the file: 1 bad row", { problems: [{ line: 3, message: "not a number" }] })), "ERR_INPUT", 2],
    [["--json"], () => Promise.reject(new TypeError("x is undefined")), "ERR_UNEXPECTED", 1],
  ];
  for (const [args, run, code, exitCode] of cases) {
    const io = collect();
    assert.is(await runCommand({ args, usage: "u", options: json, io, run }), exitCode);
    const doc = JSON.parse(io.outText);
    assert.is(doc.ok, false);
    assert.is(doc.error.code, code);
    assert.is(doc.error.exitCode, exitCode);
    assert.ok(io.errText.length > 0, "the line for a person stays on err");
  }
  const io = collect();
  await runCommand({ args: ["--json"], usage: "u", options: json, io, run: cases[0][1] });
  assert.is(JSON.parse(io.outText).error.dueAt, "2030-01-01T00:00:00.000Z");
  const input = collect();
  await runCommand({ args: ["--json"], usage: "u", options: json, io: input, run: cases[2][1] });
  assert.equal(JSON.parse(input.outText).error.problems, [{ line: 3, message: "not a number" }]);
});
frame("without --json, or for a command that has no --json flag, out stays empty on a failure", async () => {
  for (const [args, options] of [[[], { json: { type: "boolean" } }], [["--", "--json"], { json: { type: "boolean" } }], [["--json"], {}]] as const) {
    const io = collect();
    await runCommand({ args: [...args], usage: "u", options, optionalPositionals: ["x"], io, run: () => Promise.reject(new UsageError("Cannot use x")) });
    assert.is(io.outText, "");
    assert.match(io.errText, /Cannot/);
  }
});
frame("failureDocument() keeps data fields, never az's stderr", () => {
  const az = new AzError("Cannot run az account show: denied", { args: ["account", "show"], exitCode: 1, stderr: "secret-ish noise" } as never);
  const doc = failureDocument(az);
  assert.is(doc.error.code, "ERR_AZ");
  assert.not.ok("stderr" in doc.error);
  assert.not.ok("detail" in doc.error, "az's stderr is the detail: only with --verbose");
  assert.is(failureDocument(az, { verbose: true }).error.detail, "secret-ish noise");
  assert.equal(failureDocument(new FederationError("Cannot sign in", { aadsts: 700213, oauthError: "invalid_client" })).error, {
    code: "ERR_FEDERATION", message: "Cannot sign in", exitCode: 1, aadsts: 700213, oauthError: "invalid_client",
  });
});
frame.run();

const optional = suite("parseCommandLine() optional positionals");
optional("accepts the required ones plus up to the optional ones, and says so when not", async () => {
  const { parseCommandLine } = await import("../../lib/cli/command.mts");
  const { UsageError } = await import("../../lib/core/errors.mts");
  const spec = { options: {}, positionals: ["a", "b"], optionalPositionals: ["c"] };
  assert.equal(parseCommandLine({ ...spec, args: ["1", "2"] }).positionals, ["1", "2"]);
  assert.equal(parseCommandLine({ ...spec, args: ["1", "2", "3"] }).positionals, ["1", "2", "3"]);
  for (const args of [["1"], ["1", "2", "3", "4"]]) {
    try {
      parseCommandLine({ ...spec, args });
      assert.unreachable();
    } catch (e) {
      assert.instance(e, UsageError);
      assert.match((e as Error).message, /expected <a> <b> \[c\]/);
    }
  }
});
optional.run();

const rows = suite("formatProblems()");
rows("sorts by line and indents each problem", () => {
  assert.equal(formatProblems([{ line: 9, message: "b" }, { line: 2, message: "a" }]), ["  line 2: a", "  line 9: b"]);
  assert.equal(formatProblems([]), []);
});
rows("shows MAX_PROBLEMS_SHOWN and counts the rest", () => {
  const many = Array.from({ length: MAX_PROBLEMS_SHOWN + 1 }, (_, i) => ({ line: i + 1, message: "x" }));
  assert.is(formatProblems(many.slice(0, MAX_PROBLEMS_SHOWN)).length, MAX_PROBLEMS_SHOWN);
  assert.equal(formatProblems(many).slice(-2), [`  line ${MAX_PROBLEMS_SHOWN}: x`, "  … and 1 more"]);
});
rows.run();
