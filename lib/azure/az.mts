// A thin wrapper over the `az` CLI for the control plane (deployments need Bicep, which az
// brings). Every call asks for JSON, hides az's warnings, and turns a failure into an AzError
// carrying az's own `ERROR:` line. No secrets are ever passed on the command line.
import { AzError, AzNotFoundError } from "../core/errors.mts";

export interface AzRunOptions {
  /** Executable to run; default `az` from PATH. */
  command?: string;
  /** Environment for the child process; default the parent's (zx's default). */
  env?: Record<string, string | undefined>;
}

/** A raw az invocation result, for callers (and tests) that replace the runner. */
export interface AzResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command ...args` without a shell. Exported for tests and fakes. */
export type AzRunner = (args: string[], options: AzRunOptions) => Promise<AzResult>;

async function _zxRunner(args: string[], options: AzRunOptions): Promise<AzResult> {
  const { $ } = await import("zx/core");
  const out = await $({ quiet: true, nothrow: true, ...(options.env ? { env: options.env as NodeJS.ProcessEnv } : {}), verbose: false, input: "" })`${options.command ?? "az"} ${args}`;
  return { exitCode: out.exitCode, stdout: out.stdout, stderr: out.stderr };
}

let _runner: AzRunner = _zxRunner;

/** Replaces how az is run (tests); returns the previous runner. */
export function setAzRunner(runner: AzRunner): AzRunner {
  const previous = _runner;
  _runner = runner;
  return previous;
}

/** `ERROR: …` line of az's stderr without the prefix, if any. */
export function azErrorLine(stderr: string): string | undefined {
  const line = stderr.split(/\r?\n/).find((l) => l.startsWith("ERROR:"));
  return line?.slice("ERROR:".length).trim();
}

function _commandName(args: string[]): string {
  const words: string[] = [];
  for (const a of args) {
    if (a.startsWith("-")) break;
    words.push(a);
  }
  return words.join(" ");
}

/**
 * Runs `az <args> --output json --only-show-errors` and returns the parsed JSON (null when
 * az printed nothing). Throws AzNotFoundError when az is not installed, AzError otherwise.
 */
export async function runAz(args: string[], options: AzRunOptions = {}): Promise<unknown> {
  const full = [...args, "--output", "json", "--only-show-errors"];
  const name = _commandName(args);
  let result: AzResult;
  try {
    result = await _runner(full, options);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
      throw new AzNotFoundError("Cannot run az: not found on PATH (install the Azure CLI or use Azure Cloud Shell)", { cause });
    }
    throw new AzError(`Cannot run az ${name}: ${(cause as Error).message}`, { args: full, exitCode: null, stderr: "", cause });
  }
  if (result.exitCode === 127 && /not found|No such file/i.test(result.stderr)) {
    throw new AzNotFoundError("Cannot run az: not found on PATH (install the Azure CLI or use Azure Cloud Shell)");
  }
  if (result.exitCode !== 0) {
    const errorLine = azErrorLine(result.stderr);
    const lastLine = result.stderr.trim().split(/\r?\n/).pop();
    throw new AzError(`Cannot run az ${name}: ${errorLine ?? (lastLine || `exit code ${result.exitCode}`)}`, {
      args: full,
      exitCode: result.exitCode,
      stderr: result.stderr,
      errorLine,
    });
  }
  const text = result.stdout.trim();
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new AzError(`Cannot read output of az ${name}: not JSON (${text.slice(0, 80)})`, {
      args: full,
      exitCode: result.exitCode,
      stderr: result.stderr,
      cause,
    });
  }
}

/** The signed-in account, as `az account show` prints it. */
export interface AzAccount {
  id: string;
  tenantId: string;
  name?: string;
  user?: { name?: string; type?: string };
  [key: string]: unknown;
}

/** `az account show`: the subscription and tenant az currently uses. */
export async function accountShow(options: AzRunOptions = {}): Promise<AzAccount> {
  return (await runAz(["account", "show"], options)) as AzAccount;
}

/** `az group create`: creates the resource group, or leaves an existing one as it is. */
export async function groupCreate(
  options: { subscriptionId: string; name: string; location: string } & AzRunOptions,
): Promise<Record<string, unknown>> {
  return (await runAz(
    ["group", "create", "--subscription", options.subscriptionId, "--name", options.name, "--location", options.location],
    options,
  )) as Record<string, unknown>;
}

export type DeploymentParameterValue = string | number | boolean | object;

/** The ARM parameters object `{"name": {"value": …}}` for `--parameters`. */
export function deploymentParametersJson(parameters: Record<string, DeploymentParameterValue | undefined>): string {
  const out: Record<string, { value: DeploymentParameterValue }> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (value !== undefined) out[key] = { value };
  }
  return JSON.stringify(out);
}

/**
 * `az deployment group create` of a Bicep or JSON template; waits for the deployment and
 * returns the deployment resource (outputs under `properties.outputs.<name>.value`).
 * Parameters go as one JSON parameters object so every type arrives exactly.
 */
export async function deploymentGroupCreate(
  options: {
    subscriptionId: string;
    resourceGroup: string;
    name: string;
    templateFile: string;
    parameters: Record<string, DeploymentParameterValue | undefined>;
  } & AzRunOptions,
): Promise<Record<string, unknown>> {
  return (await runAz([
    "deployment", "group", "create",
    "--subscription", options.subscriptionId,
    "--resource-group", options.resourceGroup,
    "--name", options.name,
    "--template-file", options.templateFile,
    "--parameters", deploymentParametersJson(options.parameters),
  ], options)) as Record<string, unknown>;
}

/**
 * The outputs of a deployment as plain `{name: value}`. ARM treats output names
 * case-insensitively and some tools change their case, so keys are as declared but
 * `getDeploymentOutput` looks up without case.
 */
export function deploymentOutputs(deployment: unknown): Record<string, unknown> {
  const outputs = (deployment as { properties?: { outputs?: Record<string, { value?: unknown }> } })?.properties?.outputs ?? {};
  const result: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(outputs)) result[key] = entry?.value;
  return result;
}

/** One deployment output by name (case-insensitive); undefined when absent. */
export function getDeploymentOutput(outputs: Record<string, unknown>, name: string): unknown {
  const key = Object.keys(outputs).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : outputs[key];
}

/**
 * `az rest`: an ARM call with az's own token. `url` may be ARM-relative (`/subscriptions/…`);
 * az prefixes the cloud's Resource Manager endpoint.
 */
export async function rest(
  options: { method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE"; url: string; body?: unknown } & AzRunOptions,
): Promise<unknown> {
  const args = ["rest", "--method", options.method.toLowerCase(), "--url", options.url];
  if (options.body !== undefined) args.push("--body", JSON.stringify(options.body));
  return await runAz(args, options);
}

/** Signature of `rest`, so ARM helpers can take a fake. */
export type AzRest = typeof rest;
