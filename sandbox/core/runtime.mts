// How to run a .mts file in a child process under the runtime we are on.
declare const Deno: { execPath(): string } | undefined;

/** argv prefix that runs a TypeScript file: Deno, Node with type stripping, or Node 20 + tsx. */
export function tsRunner(): string[] {
  if (typeof Deno !== "undefined") return [Deno.execPath(), "run", "-A"];
  const features = process.features as { typescript?: string | boolean };
  if (features.typescript) return [process.execPath];
  return [process.execPath, "--import", "tsx"];
}
