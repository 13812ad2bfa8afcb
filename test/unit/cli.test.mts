import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describeFailure, exitCodeFor, formatError, parseCommandLine, runCommand } from "../../lib/cli.mts";
import { AzError, ConfigInvalidError, CustomerNotConnectedError, FederationError, UsageError } from "../../lib/errors.mts";

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
parse("--help skips the positional count", () => {
  assert.is(parseCommandLine({ args: ["--help"], options, positionals: ["one"] }).values.help, true);
  assert.is(parseCommandLine({ args: ["-h"], options }).values.help, true);
});
parse.run();

const exit = suite("exitCodeFor()");
exit("2 for usage and input errors, 1 otherwise", () => {
  assert.is(exitCodeFor(new UsageError("x")), 2);
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
  assert.match(text, /^Cannot get a token\n  code: ERR_FEDERATION\n  AADSTS700213: full text\n  caused by: Error: inner$/);
});
format("marks unexpected errors and hints at --verbose", () => {
  assert.is(formatError(new TypeError("bad\nmore")), "Unexpected error: bad (run again with --verbose for details)");
  assert.match(formatError(new TypeError("bad"), { verbose: true }), /TypeError: bad\n\s+at /);
});
format.run();

const failure = suite("describeFailure()");
failure("appends the usage after a usage error only", () => {
  assert.equal(describeFailure(new UsageError("Cannot use x"), { usage: "Usage: s\n" }), { text: "Cannot use x\n\nUsage: s\n", exitCode: 2 });
  assert.equal(describeFailure(new FederationError("Cannot get a token", {}), { usage: "Usage: s\n" }), { text: "Cannot get a token\n", exitCode: 1 });
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
frame("an unknown flag is a usage error: exit 2, one line on err, the command not run", async () => {
  const io = collect();
  let ran = false;
  const code = await runCommand({ args: ["--nope"], usage: "Usage: x\n", options: {}, io, run: async () => { ran = true; return 0; } });
  assert.is(code, 2);
  assert.match(io.errText, /nope/);
  assert.not.ok(ran);
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
frame.run();

const optional = suite("parseCommandLine() optional positionals");
optional("accepts the required ones plus up to the optional ones, and says so when not", async () => {
  const { parseCommandLine } = await import("../../lib/cli.mts");
  const { UsageError } = await import("../../lib/errors.mts");
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
