import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseCommandLine } from "../../lib/cli/command.mts";
import { UsageError } from "../../lib/core/errors.mts";

// 2-emit-meter's shape: a --file batch takes no positionals, a single event takes five.
const options = { file: { type: "string" }, json: { type: "boolean" } } as const;
const SINGLE = ["subscription", "managed-resource-group", "dimension", "quantity", "hours-ago"];
const positionals = (values: Record<string, string | boolean | undefined>) => (values.file !== undefined ? [] : SINGLE);

function usageErrorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.is((error as UsageError).code, "ERR_USAGE");
    return error as UsageError;
  }
  assert.unreachable("no UsageError");
  throw new Error("unreachable");
}

const parse = suite("parseCommandLine() with positionals chosen by the flags");
parse("passes the parsed flags to the function", () => {
  const seen: Record<string, unknown>[] = [];
  parseCommandLine({ args: ["--file", "u.csv", "--json"], options, positionals: (v) => (seen.push({ ...v }), []) });
  assert.equal(seen, [{ file: "u.csv", json: true }]);
});
parse("takes no positionals when --file is given", () => {
  const parsed = parseCommandLine({ args: ["--file", "usage.csv"], options, positionals });
  assert.equal([{ ...parsed.values }, parsed.positionals], [{ file: "usage.csv" }, []]);
});
parse("takes five positionals otherwise", () => {
  const args = ["0b1f6471-1bf0-4dda-aec3-cb9272f09590", "mrg", "cpu", "5", "1"];
  const parsed = parseCommandLine({ args: [...args, "--json"], options, positionals });
  assert.equal([{ ...parsed.values }, parsed.positionals], [{ json: true }, args]);
});
parse("refuses positionals next to --file", () => {
  const error = usageErrorOf(() => parseCommandLine({ args: ["--file", "u.csv", "extra"], options, positionals }));
  assert.is(error.message, "Cannot run: expected no arguments, got 1 argument(s)");
});
parse("refuses too few or too many positionals without --file, naming them", () => {
  const few = usageErrorOf(() => parseCommandLine({ args: ["a", "b", "c"], options, positionals }));
  assert.is(few.message, "Cannot run: expected <subscription> <managed-resource-group> <dimension> <quantity> <hours-ago>, got 3 argument(s)");
  const many = usageErrorOf(() => parseCommandLine({ args: ["a", "b", "c", "d", "e", "f"], options, positionals }));
  assert.match(many.message, /, got 6 argument\(s\)$/);
});
parse("--help skips the count whatever the function says", () => {
  assert.equal(parseCommandLine({ args: ["--help", "a"], options, positionals }).values.help, true);
  assert.equal(parseCommandLine({ args: ["--file", "f", "x", "-h"], options, positionals }).positionals, ["x"]);
});
parse.run();
