// Reading what a command takes on stdin or from a file (a secret value, a message body): never
// from argv, where it would stay in shell history and process lists.
import { readFile } from "node:fs/promises";
import { UsageError } from "../core/errors.mts";
import { readAllBytes } from "../core/bytes.mts";

/**
 * The bytes of `path`, or of stdin when `path` is undefined or `-`. A terminal on stdin is a
 * UsageError (the command would wait for typing nobody meant): `Cannot read the <what>: <howTo>`.
 */
export async function readPayload(o: {
  path: string | undefined;
  /** e.g. `secret value`, `message body`. */
  what: string;
  /** What to do instead of typing, e.g. `pipe it on stdin or use --body FILE`. */
  howTo: string;
  stdin: AsyncIterable<Uint8Array | string> & { isTTY?: boolean };
}): Promise<Uint8Array> {
  if (o.path === undefined || o.path === "-") {
    if (o.stdin.isTTY) throw new UsageError(`Cannot read the ${o.what}: ${o.howTo}`);
    return await readAllBytes(o.stdin);
  }
  try {
    return new Uint8Array(await readFile(o.path));
  } catch (cause) {
    throw new UsageError(`Cannot read the ${o.what} from ${JSON.stringify(o.path)}: ${(cause as Error).message}`, { cause });
  }
}
