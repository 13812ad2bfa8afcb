/**
 * The az stand-in's commands, run inside the sandbox process (the `az` executable,
 * sandbox/az/az.mjs, only forwards argv, cwd and stdin to the admin API's POST /az).
 *
 * Each command behaves like the real Azure CLI as far as this project's scripts and users can
 * tell: the same JSON output (keys sorted, two-space indent), `--query` (JMESPath, query.mts) and
 * `--output json|jsonc|tsv|table|none`, the same `ERROR: ...` lines on stderr and the same exit
 * codes (0 ok; 1 failed; 2 usage error from argument parsing; 3 `show` of a missing resource).
 * Control-plane calls go to the ARM emulator over its real REST API with the signed-in user's
 * token, so the ARM emulator sees exactly what real ARM would see from az.
 *
 * Commands: account show|set|list|get-access-token, group create|show|exists,
 * deployment group create|show, rest, graph query, version (and --version), config set.
 *
 * @example
 * const { exitCode, stdout } = await runAz({ argv: ["account", "show"], cwd: process.cwd() }, ctx);
 */
import { readFile } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import { basename, extname, isAbsolute, resolve } from "node:path";
import { BicepSyntaxError } from "./bicep/errors.mts";
import { compileBicep, parseBicep } from "./bicep/evaluate.mts";
import type { ArmError } from "./bicep/types.mts";
import { QueryError, compileQuery, orderedObjects } from "./query.mts";

// ---------------------------------------------------------------------------------------------
// Contract with the sandbox core

/** What the sandbox core provides to the az commands. */
export interface AzContext {
  /** ARM emulator base URL (https://127.0.0.1:port), trusted through the process's CA settings. */
  armEndpoint: string;
  /** Microsoft Graph emulator base URL: `az rest` sends https://graph.microsoft.com/… there. */
  graphEndpoint?: string;
  fetch: typeof fetch;
  /** A token of the signed-in ISV user for `resource`, in `tenantId` (default: the user's home tenant). */
  getUserToken(opts: { resource: string; tenantId?: string }): Promise<{ accessToken: string; expiresOnEpochS: number; tenantId: string }>;
  account: {
    /** The selected subscription (what `az account show` prints). */
    get(): { subscriptionId: string; subscriptionName: string; tenantId: string; user: { name: string; type: "user" } };
    /** Selects a subscription by id or name; throws when the user cannot see it. */
    set(subscriptionIdOrName: string): void;
  };
  /** Every subscription the user can see (what `az account list` prints). */
  listSubscriptions(): Array<{ subscriptionId: string; name: string; tenantId: string }>;
  /** The subscription the user can see with this id or name (any case), without listing them all. */
  findSubscription(idOrName: string): { subscriptionId: string; name: string; tenantId: string } | undefined;
}

export interface AzRequest {
  argv: string[];
  cwd: string;
  /** What the caller piped in; only sent when an argument is `@-`. */
  stdin?: string;
}

export interface AzResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// ---------------------------------------------------------------------------------------------
// Constants

const AZ_VERSION = "2.79.0";
const RESOURCE_GRAPH_EXTENSION_VERSION = "2.1.1";
/** The audience the stand-in uses for its own ARM calls. */
const ARM_RESOURCE = "https://management.azure.com/";
/** The resource az asks a token for when `az rest` calls Microsoft Graph (the cloud's microsoft_graph_resource_id). */
const GRAPH_RESOURCE = "https://graph.microsoft.com/";
/** What real az asks for when `get-access-token` gets no --resource/--scope (the cloud's AD resource id). */
const DEFAULT_TOKEN_RESOURCE = "https://management.core.windows.net/";
const RESOURCE_TYPES: Record<string, string> = {
  arm: DEFAULT_TOKEN_RESOURCE,
  "ms-graph": "https://graph.microsoft.com/",
  "aad-graph": "https://graph.windows.net/",
  batch: "https://batch.core.windows.net/",
  "data-lake": "https://datalake.azure.net/",
  media: "https://rest.media.azure.net",
  "oss-rdbms": "https://ossrdbms-aad.database.windows.net",
};
const RESOURCES_API_VERSION = "2022-09-01";
const RESOURCE_GRAPH_API_VERSION = "2021-03-01";
/** Real az waits as long as Retry-After says; the sandbox caps it so tests stay quick. */
const MAX_POLL_DELAY_MS = 1000;
const MAX_POLLS = 300;
const OUTPUT_FORMATS = ["json", "jsonc", "none", "table", "tsv", "yaml", "yamlc"];

// ---------------------------------------------------------------------------------------------
// Errors: each carries the exit code and the stderr text az would print

class _AzExit extends Error {
  exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}
/** argparse-level problems: exit 2. */
const _usage = (message: string) => new _AzExit(message, 2);
/** Everything else az reports as `ERROR: ...`: exit 1. */
const _fail = (message: string, exitCode = 1) => new _AzExit(message, exitCode);

/** A failed ARM call, keeping ARM's error object. */
class _ArmHttpError extends Error {
  status: number;
  statusText: string;
  text: string;
  armError: ArmError;
  constructor(status: number, statusText: string, text: string) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const error = (parsed as { error?: ArmError } | undefined)?.error;
    const armError: ArmError = error && typeof error.code === "string"
      ? error
      : { code: statusText.replace(/\s+/g, "") || `HttpStatus${status}`, message: `Operation returned an invalid status '${statusText}'` };
    super(armError.message);
    this.status = status;
    this.statusText = statusText;
    this.text = text;
    this.armError = armError;
  }
  /** How az prints an SDK HttpResponseError. */
  azMessage(): string {
    const { code, message } = this.armError;
    return `(${code}) ${message}\nCode: ${code}\nMessage: ${message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Argument parsing, argparse-style

interface ArgSpec {
  dest: string;
  /** Option strings in the order az lists them in messages, e.g. ["--name", "-n"]. */
  names: string[];
  required?: boolean;
  flag?: boolean;
  /** A flag that may be followed by true/false (az's three-state flags, e.g. --no-prompt). */
  optionalBool?: boolean;
  /** nargs='+' (repeated options accumulate). */
  multi?: boolean;
  /** az enum values (matched case-insensitively). */
  choices?: string[];
}
type Parsed = Record<string, string | string[] | boolean | undefined>;

interface Command {
  path: string;
  summary: string;
  args: ArgSpec[];
  /** Options real az has that the stand-in refuses explicitly rather than ignoring. */
  unsupported?: string[];
  /** Positional arguments (nargs='+'), e.g. az config set KEY=VALUE. */
  positional?: { dest: string; metavar: string };
  run(args: Parsed, env: _Env): Promise<Output>;
}
/** A command's result: a JSON value to format, raw text, or nothing. */
type Output = { value: unknown } | { text: string } | undefined;

const GLOBAL_ARGS: ArgSpec[] = [
  { dest: "output", names: ["--output", "-o"] },
  { dest: "query", names: ["--query"] },
  { dest: "onlyShowErrors", names: ["--only-show-errors"], flag: true },
  { dest: "debug", names: ["--debug"], flag: true },
  { dest: "verbose", names: ["--verbose"], flag: true },
  { dest: "help", names: ["--help", "-h"], flag: true },
];
const SUBSCRIPTION_ARG: ArgSpec = { dest: "subscription", names: ["--subscription"] };

const _display = (spec: ArgSpec) => spec.names.join("/");
const _looksLikeOption = (token: string) => /^--?[A-Za-z]/.test(token);

function _parseArgs(tokens: string[], command: Command): Parsed {
  const specs = [...command.args, ...GLOBAL_ARGS];
  const byName = new Map<string, ArgSpec>();
  for (const s of specs) for (const n of s.names) byName.set(n, s);
  const parsed: Parsed = {};
  const unrecognized: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (!_looksLikeOption(token)) {
      if (command.positional) positionals.push(token);
      else unrecognized.push(token);
      continue;
    }
    const eq = token.startsWith("--") ? token.indexOf("=") : -1;
    const name = eq > 0 ? token.slice(0, eq) : token;
    const spec = byName.get(name);
    if (!spec) {
      if (command.unsupported?.includes(name)) throw _usage(`argument ${name} is not supported by the sandbox's az stand-in`);
      unrecognized.push(token);
      continue;
    }
    if (spec.flag) {
      if (eq > 0) throw _usage(`argument ${_display(spec)}: ignored explicit argument '${token.slice(eq + 1)}'`);
      parsed[spec.dest] = true;
      if (spec.optionalBool && /^(true|false)$/i.test(tokens[i + 1] ?? "")) parsed[spec.dest] = tokens[++i].toLowerCase() === "true";
      continue;
    }
    const values: string[] = [];
    if (eq > 0) values.push(token.slice(eq + 1));
    else {
      while (i + 1 < tokens.length && !_looksLikeOption(tokens[i + 1])) {
        values.push(tokens[++i]);
        if (!spec.multi) break;
      }
    }
    if (values.length === 0) throw _usage(`argument ${_display(spec)}: expected ${spec.multi ? "at least one argument" : "one argument"}`);
    if (spec.choices) {
      const v = values[0];
      const match = spec.choices.find((c) => c.toLowerCase() === v.toLowerCase());
      if (!match) throw _usage(`argument ${_display(spec)}: '${v}' is not a valid value for '${spec.names[0]}'. Allowed values: ${spec.choices.join(", ")}.`);
      values[0] = match;
    }
    if (spec.multi) parsed[spec.dest] = [...((parsed[spec.dest] as string[] | undefined) ?? []), ...values];
    else parsed[spec.dest] = values[0];
  }
  if (parsed.help) return parsed;
  const missing = command.args.filter((s) => s.required && parsed[s.dest] === undefined).map(_display);
  if (command.positional && positionals.length === 0) missing.push(command.positional.metavar);
  if (missing.length > 0) throw _usage(`the following arguments are required: ${missing.join(", ")}`);
  if (unrecognized.length > 0) throw _usage(`unrecognized arguments: ${unrecognized.join(" ")}`);
  if (command.positional) parsed[command.positional.dest] = positionals;
  const output = parsed.output as string | undefined;
  if (output !== undefined && !OUTPUT_FORMATS.includes(output)) {
    throw _usage(`argument --output/-o: invalid choice: '${output}' (choose from ${OUTPUT_FORMATS.map((f) => `'${f}'`).join(", ")})`);
  }
  if (output === "yaml" || output === "yamlc") throw _usage("--output yaml is not supported by the sandbox's az stand-in; use json, tsv, table or none");
  return parsed;
}

/** --query is checked while parsing, as az's argparse type does: a bad query changes nothing. */
function _compileQuery(args: Parsed): ((data: unknown) => unknown) | undefined {
  return typeof args.query === "string" ? compileQuery(args.query) : undefined;
}

/** az (knack) replaces `@file` and `key=@file` arguments by the file's content; `@-` reads stdin. */
async function _expandFileArguments(argv: string[], req: AzRequest): Promise<string[]> {
  const load = async (path: string) => {
    if (path === "-") return (req.stdin ?? "").replace(/\r?\n$/, "");
    const full = isAbsolute(path) ? path : resolve(req.cwd, path);
    try {
      return (await readFile(full, "utf8")).replace(/\r?\n$/, "");
    } catch {
      throw _fail(`[Errno 2] No such file or directory: '${path}'`);
    }
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (i > 0 && argv[i - 1] === "--query") out.push(arg); // JMESPath uses '@' for the current node
    else if (arg.startsWith("@") && arg.length > 1) out.push(await load(arg.slice(1)));
    else if (/^[^=@\s]+=@./.test(arg)) {
      const eq = arg.indexOf("=@");
      out.push(arg.slice(0, eq + 1) + await load(arg.slice(eq + 2)));
    } else out.push(arg);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output formatting, as knack does it

function _sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(_sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, _sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

/** Python's str() of a JSON scalar. */
function _pyStr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  return String(v);
}

function _tsv(value: unknown): string {
  const rows = Array.isArray(value) ? value : [value];
  const cell = (v: unknown) => (Array.isArray(v) ? String(v.length) : v && typeof v === "object" ? "" : _pyStr(v));
  return rows.map((row) => {
    if (row && typeof row === "object" && !Array.isArray(row)) {
      const keys = orderedObjects.has(row) ? Object.keys(row) : Object.keys(row).sort();
      return keys.map((k) => cell((row as Record<string, unknown>)[k])).join("\t");
    }
    if (Array.isArray(row)) return row.map(cell).join("\t");
    return row === null || row === undefined ? "" : cell(row);
  }).map((line) => `${line}\n`).join("");
}

/** knack's table: scalar, non-null fields (not id/type/etag), first letter capitalised, tabulate's "simple" layout. */
function _table(value: unknown): string {
  const rows = (Array.isArray(value) ? value : [value]).map((item) => {
    const entry = new Map<string, string>();
    if (Array.isArray(item)) item.forEach((v, i) => entry.set(`Column${i + 1}`, _pyStr(v)));
    else if (item && typeof item === "object") {
      const keys = orderedObjects.has(item) ? Object.keys(item) : Object.keys(item).sort();
      for (const k of keys) {
        const v = (item as Record<string, unknown>)[k];
        if (["id", "type", "etag"].includes(k) || v === null || v === undefined || typeof v === "object") continue;
        entry.set(k.charAt(0).toUpperCase() + k.slice(1), _pyStr(v));
      }
    } else entry.set("Result", _pyStr(item));
    return entry;
  });
  const columns = [...new Set(rows.flatMap((r) => [...r.keys()]))];
  if (columns.length === 0) return "";
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r.get(c) ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(columns), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(columns.map((c) => r.get(c) ?? "")))]
    .map((l) => `${l}\n`).join("");
}

/** Python json.dumps defaults (', ' and ': ' separators, ASCII only): how az embeds ARM errors in messages. */
function _pyJson(v: unknown): string {
  const ascii = (s: string) => JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return ascii(v);
  if (typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(_pyJson).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${ascii(k)}: ${_pyJson(x)}`).join(", ")}}`;
}

function _format(output: Output, args: Parsed, query: ((data: unknown) => unknown) | undefined): string {
  if (!output) return "";
  if ("text" in output) return output.text;
  const value = query ? query(output.value) : output.value;
  if (value === null || value === undefined) return "";
  switch ((args.output as string | undefined) ?? "json") {
    case "none":
      return "";
    case "tsv":
      return _tsv(value);
    case "table":
      return _table(value);
    default:
      return `${JSON.stringify(_sortKeys(value), null, 2)}\n`;
  }
}

/** az adds `resourceGroup` (parsed from `id`) to every object of a resource provider's result. */
function _addResourceGroup(v: unknown): unknown {
  if (Array.isArray(v)) v.forEach(_addResourceGroup);
  else if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const rg = typeof o.id === "string" ? /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\//i.exec(o.id)?.[1] : undefined;
    if (rg && !Object.keys(o).some((k) => k.toLowerCase() === "resourcegroup")) o.resourceGroup = rg;
    for (const x of Object.values(o)) _addResourceGroup(x);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// The environment a command runs in: context, subscription, ARM client, warnings

class _Env {
  ctx: AzContext;
  req: AzRequest;
  warnings: string[] = [];
  tokens = new Map<string, Promise<string>>();
  constructor(ctx: AzContext, req: AzRequest) {
    this.ctx = ctx;
    this.req = req;
  }

  warn(message: string): void {
    this.warnings.push(`WARNING: ${message}`);
  }

  /** The subscription named by --subscription (id or name), else the selected one. */
  subscription(idOrName?: string): { subscriptionId: string; name: string; tenantId: string } {
    if (!idOrName) {
      const a = this.ctx.account.get();
      return { subscriptionId: a.subscriptionId, name: a.subscriptionName, tenantId: a.tenantId };
    }
    const found = this.ctx.findSubscription(idOrName);
    if (!found) throw _fail(`Subscription '${idOrName}' not found. Check the spelling and casing and try again.`);
    return found;
  }

  async userToken(resource: string, tenantId?: string) {
    try {
      return await this.ctx.getUserToken({ resource, tenantId });
    } catch (e) {
      throw _fail(String((e as Error).message ?? e));
    }
  }

  token(resource: string, tenantId: string): Promise<string> {
    const key = `${tenantId} ${resource}`;
    if (!this.tokens.has(key)) this.tokens.set(key, this.userToken(resource, tenantId).then((t) => t.accessToken));
    return this.tokens.get(key)!;
  }

  /** One ARM request with the user's token for the tenant; throws _ArmHttpError on non-2xx. */
  async arm(method: string, pathOrUrl: string, tenantId: string, body?: unknown): Promise<{ status: number; headers: Headers; json: unknown }> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${this.ctx.armEndpoint}${pathOrUrl}`;
    const headers: Record<string, string> = { Authorization: `Bearer ${await this.token(ARM_RESOURCE, tenantId)}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    try {
      res = await this.ctx.fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw _fail(`Cannot reach Azure Resource Manager at ${this.ctx.armEndpoint}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new _ArmHttpError(res.status, res.statusText || STATUS_CODES[res.status] || "", text);
    let json: unknown = null;
    if (text.trim() !== "") {
      try {
        json = JSON.parse(text);
      } catch {
        throw _fail(`Azure Resource Manager answered ${method} ${pathOrUrl} with something that is not JSON: ${text.slice(0, 120)}`);
      }
    }
    return { status: res.status, headers: res.headers, json };
  }

  /** PUT, following ARM's long-running-operation headers until the resource is in a final state. */
  async armPut(path: string, apiVersion: string, tenantId: string, body: unknown): Promise<Record<string, unknown>> {
    const url = `${path}?api-version=${apiVersion}`;
    const put = await this.arm("PUT", url, tenantId, body);
    const asyncOp = put.headers.get("azure-asyncoperation");
    const location = put.headers.get("location");
    const state = (r: unknown) => String((r as { properties?: { provisioningState?: unknown } })?.properties?.provisioningState ?? "Succeeded");
    const terminal = (s: string) => ["succeeded", "failed", "canceled"].includes(s.toLowerCase());
    let retryAfterS = Number(put.headers.get("retry-after") ?? "0");
    const pause = () => new Promise((r) => setTimeout(r, Math.min(MAX_POLL_DELAY_MS, Math.max(50, retryAfterS * 1000))));
    if (put.status === 202 || ((put.status === 201 || put.status === 200) && !terminal(state(put.json)))) {
      for (let i = 0; ; i++) {
        if (i >= MAX_POLLS) throw _fail(`Timed out waiting for ${path} to be provisioned.`);
        await pause();
        if (asyncOp) {
          const op = await this.arm("GET", asyncOp, tenantId);
          retryAfterS = Number(op.headers.get("retry-after") ?? "0");
          const status = String((op.json as { status?: unknown })?.status ?? "");
          if (!terminal(status)) continue;
          if (status.toLowerCase() !== "succeeded") {
            const error = (op.json as { error?: ArmError }).error ?? { code: status, message: `The operation on '${path}' ended as ${status}.` };
            throw Object.assign(new Error(error.message), { armError: error });
          }
          break;
        }
        if (put.status === 202 && location) {
          const op = await this.arm("GET", location, tenantId);
          retryAfterS = Number(op.headers.get("retry-after") ?? "0");
          if (op.status === 202) continue;
          break;
        }
        const current = await this.arm("GET", url, tenantId);
        const s = state(current.json);
        if (!terminal(s)) continue;
        if (s.toLowerCase() !== "succeeded") {
          throw Object.assign(new Error(`Provisioning of '${path}' ended as ${s}.`), { armError: { code: `Provisioning${s}`, message: `Provisioning of '${path}' ended as ${s}.` } });
        }
        return current.json as Record<string, unknown>;
      }
      return (await this.arm("GET", url, tenantId)).json as Record<string, unknown>;
    }
    return put.json as Record<string, unknown>;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

function _accountJson(s: { subscriptionId: string; name: string; tenantId: string }, env: _Env) {
  const current = env.ctx.account.get();
  return {
    environmentName: "AzureCloud",
    homeTenantId: s.tenantId,
    id: s.subscriptionId,
    isDefault: s.subscriptionId === current.subscriptionId,
    managedByTenants: [],
    name: s.name,
    state: "Enabled",
    tenantId: s.tenantId,
    user: { name: current.user.name, type: current.user.type },
  };
}

/** "YYYY-MM-DD HH:MM:SS.000000" in local time: Python's str(datetime.fromtimestamp(epoch)). */
function _localTime(epochS: number): string {
  const d = new Date(epochS * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.000000`;
}

/** The resource-group object as az's SDK model prints it (every attribute present). */
function _groupJson(raw: unknown): Record<string, unknown> {
  return { id: null, location: null, managedBy: null, name: null, properties: null, tags: null, type: "Microsoft.Resources/resourceGroups", ...(raw as object) };
}

const _groupPath = (subscriptionId: string, name: string) => `/subscriptions/${subscriptionId}/resourcegroups/${encodeURIComponent(name)}`;

/** The deployment object as az's SDK model prints it (every attribute present). */
function _deploymentJson(raw: Record<string, unknown>, fallback: Record<string, unknown> = {}): unknown {
  const props = { ...fallback, ...((raw.properties ?? {}) as Record<string, unknown>) };
  return _addResourceGroup({
    id: null,
    location: null,
    name: null,
    tags: null,
    type: "Microsoft.Resources/deployments",
    ...raw,
    properties: {
      correlationId: null,
      debugSetting: null,
      dependencies: [],
      duration: null,
      error: null,
      mode: "Incremental",
      onErrorDeployment: null,
      outputResources: [],
      outputs: null,
      parameters: null,
      parametersLink: null,
      providers: [],
      provisioningState: null,
      templateHash: null,
      templateLink: null,
      timestamp: null,
      validatedResources: null,
      ...props,
    },
  });
}

/**
 * az's parameter handling (azure-cli `_process_parameters`): each item is a parameters file
 * path, a JSON object ({"k": {"value": v}}, optionally under "parameters"), or KEY=VALUE,
 * where VALUE is typed by the template's declaration.
 */
async function _templateParameters(items: string[], declarations: Record<string, { type?: unknown }>, cwd: string): Promise<Record<string, unknown>> {
  const declared = new Map(Object.entries(declarations).map(([k, d]) => [k, { type: String(d?.type ?? "string").toLowerCase() }]));
  const wrapped: Record<string, unknown> = {};
  const fromObject = (o: Record<string, unknown>) => Object.assign(wrapped, (o.parameters && typeof o.parameters === "object" ? o.parameters : o) as object);
  for (const item of items) {
    if (item === "{}" && Object.keys(wrapped).length === 0) continue;
    if (/\.bicepparam$/i.test(item)) throw _fail(".bicepparam files are not supported by the sandbox's az stand-in; pass a JSON parameters file or KEY=VALUE pairs");
    let fileText: string | undefined;
    try {
      fileText = await readFile(isAbsolute(item) ? item : resolve(cwd, item), "utf8");
    } catch {
      fileText = undefined;
    }
    if (fileText !== undefined) {
      try {
        fromObject(JSON.parse(fileText));
      } catch (e) {
        throw _fail(`Failed to parse ${item} with exception:\n    ${(e as Error).message}`);
      }
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(item);
    } catch {
      json = undefined;
    }
    if (json && typeof json === "object" && !Array.isArray(json)) {
      fromObject(json as Record<string, unknown>);
      continue;
    }
    const eq = item.indexOf("=");
    if (eq < 0) throw _fail(`Unable to parse parameter: ${item}`);
    const key = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    const p = declared.get(key);
    if (!p) throw _fail(`unrecognized template parameter '${key}'. Allowed parameters: ${[...declared.keys()].sort().join(", ")}`);
    let value: unknown = raw;
    if (p.type === "object" || p.type === "secureobject" || p.type === "array") {
      try {
        value = JSON.parse(raw);
      } catch {
        throw _fail(`Failed to parse string as JSON:\n${raw}`);
      }
    } else if (p.type === "bool") value = raw.toLowerCase() === "true";
    else if (p.type === "int") {
      if (!/^\s*[+-]?\d+\s*$/.test(raw)) throw _fail(`invalid literal for int() with base 10: '${raw}'`);
      value = parseInt(raw, 10);
    }
    wrapped[key] = { value };
  }
  const values: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(wrapped)) {
    if (!entry || typeof entry !== "object" || !("value" in entry)) {
      throw _fail(`The parameter '${key}' has no 'value'; Key Vault references and other parameter forms are not supported by the sandbox's az stand-in.`);
    }
    values[key] = (entry as { value: unknown }).value;
  }
  return values;
}

async function _deploymentCreate(a: Parsed, env: _Env): Promise<Output> {
  if (a.templateUri || a.templateSpec) throw _usage("--template-uri and --template-spec are not supported by the sandbox's az stand-in; use --template-file");
  if (!a.templateFile) throw _usage("the following arguments are required: --template-file/-f");
  const file = a.templateFile as string;
  const path = isAbsolute(file) ? file : resolve(env.req.cwd, file);
  let source: string;
  try {
    source = await readFile(path, "utf8");
  } catch {
    throw _fail(`[Errno 2] No such file or directory: '${file}'`);
  }
  // As az does: a .bicep file is compiled locally (here by the subset compiler instead of
  // `bicep build`), anything else is read as an ARM JSON template; ARM gets JSON either way.
  let template: Record<string, unknown>;
  if (extname(path).toLowerCase() === ".bicep") {
    try {
      template = compileBicep(parseBicep(source, path));
    } catch (e) {
      if (e instanceof BicepSyntaxError) throw _fail(e.message);
      throw e;
    }
  } else {
    try {
      template = JSON.parse(source.replace(/^\uFEFF/, ""));
    } catch (e) {
      throw _fail(`Failed to parse '${file}', please check whether it is a valid JSON format: ${(e as Error).message}`);
    }
    if (!template || typeof template !== "object" || Array.isArray(template)) throw _fail(`Failed to parse '${file}': the template must be a JSON object.`);
  }
  const declared = (template.parameters && typeof template.parameters === "object" ? template.parameters : {}) as Record<string, { type?: unknown }>;
  const parameters = await _templateParameters((a.parameters as string[] | undefined) ?? [], declared, env.req.cwd);
  const sub = env.subscription(a.subscription as string | undefined);
  const rgName = a.resourceGroup as string;
  const name = (a.name as string | undefined) ?? basename(path, extname(path));
  const mode = (a.mode as string | undefined) ?? "Incremental";
  const deploymentPath = `/subscriptions/${sub.subscriptionId}/resourcegroups/${encodeURIComponent(rgName)}/providers/Microsoft.Resources/deployments/${encodeURIComponent(name)}`;
  const body = { properties: { template, parameters: Object.fromEntries(Object.entries(parameters).map(([k, value]) => [k, { value }])), mode } };
  const api = `api-version=${RESOURCES_API_VERSION}`;
  // 1. Preflight (azure-cli: begin_validate), a 400 carries ARM's InvalidTemplate error.
  try {
    await env.arm("POST", `${deploymentPath}/validate?${api}`, sub.tenantId, body);
  } catch (e) {
    if (!(e instanceof _ArmHttpError)) throw e;
    if (e.status === 400 && e.armError.code !== "InvalidRequestContent") throw _fail(_pyJson(e.armError));
    throw _fail(e.azMessage());
  }
  // 2. The deployment (begin_create_or_update), then polling unless --no-wait.
  if (a.noWait) {
    try {
      await env.arm("PUT", `${deploymentPath}?${api}`, sub.tenantId, body);
    } catch (e) {
      if (e instanceof _ArmHttpError) throw _fail(e.azMessage());
      throw e;
    }
    return undefined;
  }
  try {
    await env.armPut(deploymentPath, RESOURCES_API_VERSION, sub.tenantId, body);
  } catch (e) {
    if (e instanceof _ArmHttpError) throw _fail(e.status === 400 ? _pyJson(e.armError) : e.azMessage());
    const armError = (e as { armError?: ArmError }).armError;
    if (armError) throw _fail(_pyJson(armError));
    throw e;
  }
  const final = (await env.arm("GET", `${deploymentPath}?${api}`, sub.tenantId)).json as Record<string, unknown>;
  return { value: _deploymentJson(final) };
}

async function _rest(a: Parsed, env: _Env): Promise<Output> {
  const account = env.ctx.account.get();
  let url = (a.url as string).replaceAll("{subscriptionId}", account.subscriptionId);
  // The sandbox is a local Azure: Resource Manager's public host maps to the emulator.
  url = url.replace(/^https:\/\/management\.azure\.com(?=\/|$)/i, env.ctx.armEndpoint);
  // So does Microsoft Graph's, for which real az derives the token's resource from the URL too.
  const isGraph = /^https:\/\/graph\.microsoft\.com(?=\/|$)/i.test(url) && env.ctx.graphEndpoint !== undefined;
  if (isGraph) url = url.replace(/^https:\/\/graph\.microsoft\.com/i, env.ctx.graphEndpoint!);
  if (!/^https?:\/\//i.test(url)) url = `${env.ctx.armEndpoint}${url.startsWith("/") ? "" : "/"}${url}`;
  const keyValues = (items: string[], what: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const item of items) {
      let json: unknown;
      try {
        json = JSON.parse(item);
      } catch {
        json = undefined;
      }
      if (json && typeof json === "object" && !Array.isArray(json)) {
        for (const [k, v] of Object.entries(json)) out[k] = String(v);
        continue;
      }
      const eq = item.indexOf("=");
      if (eq < 0) throw _fail(`${what} must be KEY=VALUE pairs or a JSON object, got '${item}'`);
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  };
  const headers = keyValues((a.headers as string[] | undefined) ?? [], "--headers");
  const query = keyValues((a.uriParameters as string[] | undefined) ?? [], "--uri-parameters");
  const target = new URL(url);
  for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v);
  const body = a.body as string | undefined;
  const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
  if (body !== undefined && !has("content-type")) {
    try {
      JSON.parse(body);
      headers["Content-Type"] = "application/json";
    } catch {
      // Not JSON: sent as is without a Content-Type, as az does.
    }
  }
  if (!a.skipAuthorizationHeader && !has("authorization")) {
    const isArm = target.origin === new URL(env.ctx.armEndpoint).origin;
    const resource = (a.resource as string | undefined) ?? (isArm ? ARM_RESOURCE : isGraph ? GRAPH_RESOURCE : undefined);
    if (resource) headers.Authorization = `Bearer ${await env.token(resource, account.tenantId)}`;
    else env.warn("Can't derive appropriate Azure AD resource from --url to acquire an access token. If access token is required, use --resource to specify the resource");
  }
  const method = ((a.method as string | undefined) ?? "get").toUpperCase();
  let res: Response;
  try {
    res = await env.ctx.fetch(target, { method, headers, body: method === "GET" || method === "HEAD" ? undefined : body });
  } catch (e) {
    throw _fail(`Cannot reach ${target.origin}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    const reason = res.statusText || STATUS_CODES[res.status] || String(res.status);
    throw _fail(text ? `${reason}(${text})` : reason);
  }
  if (text === "") return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    env.warn('Not a json response, outputting to stdout. For binary data suggest use "--output-file" to write to a file');
    return { text: `${text}\n` };
  }
}

async function _graphQuery(a: Parsed, env: _Env): Promise<Output> {
  const first = a.first === undefined ? 100 : Number(a.first);
  if (!Number.isInteger(first) || first < 1 || first > 1000) throw _usage(`argument --first: invalid int value or out of range [1, 1000]: '${a.first}'`);
  const options: Record<string, unknown> = { $top: first, resultFormat: "objectArray" };
  if (a.skip !== undefined) {
    const skip = Number(a.skip);
    if (!Number.isInteger(skip) || skip < 0) throw _usage(`argument --skip: invalid int value: '${a.skip}'`);
    options.$skip = skip;
  }
  if (a.skipToken) options.$skipToken = a.skipToken;
  const body: Record<string, unknown> = { query: a.graphQuery, options };
  // Without --subscriptions the request carries no scope, so Resource Graph answers for
  // everything the caller can read (what `az graph query` shows for a publisher's managed apps).
  if (a.subscriptions) body.subscriptions = a.subscriptions;
  if (a.managementGroups) body.managementGroups = a.managementGroups;
  const account = env.ctx.account.get();
  let answer: Record<string, unknown>;
  try {
    answer = (await env.arm("POST", `/providers/Microsoft.ResourceGraph/resources?api-version=${RESOURCE_GRAPH_API_VERSION}`, account.tenantId, body)).json as Record<string, unknown>;
  } catch (e) {
    if (e instanceof _ArmHttpError) throw _fail(e.azMessage());
    throw e;
  }
  return {
    value: {
      count: answer.count ?? (Array.isArray(answer.data) ? answer.data.length : 0),
      data: answer.data ?? [],
      skip_token: answer.$skipToken ?? null,
      total_records: answer.totalRecords ?? null,
    },
  };
}

const COMMANDS: Command[] = [
  {
    path: "account show",
    summary: "Get the details of a subscription.",
    args: [{ dest: "subscription", names: ["--subscription", "--name", "-n", "-s"] }],
    // deno-lint-ignore require-await -- every command's run is async: a throw becomes a rejection az reports
    run: async (a, env) => ({ value: _accountJson(env.subscription(a.subscription as string | undefined), env) }),
  },
  {
    path: "account set",
    summary: "Set a subscription to be the current active subscription.",
    args: [{ dest: "subscription", names: ["--subscription", "--name", "-n", "-s"], required: true }],
    // deno-lint-ignore require-await -- every command's run is async: a throw becomes a rejection az reports
    run: async (a, env) => {
      try {
        env.ctx.account.set(a.subscription as string);
      } catch (e) {
        throw _fail(String((e as Error).message));
      }
      return undefined;
    },
  },
  {
    path: "account list",
    summary: "Get a list of subscriptions for the logged in account.",
    args: [{ dest: "all", names: ["--all"], flag: true }, { dest: "refresh", names: ["--refresh"], flag: true }],
    // deno-lint-ignore require-await -- every command's run is async: a throw becomes a rejection az reports
    run: async (_a, env) => ({ value: env.ctx.listSubscriptions().map((s) => _accountJson(s, env)) }),
  },
  {
    path: "account get-access-token",
    summary: "Get a token for utilities to access Azure.",
    args: [
      { dest: "resource", names: ["--resource"] },
      { dest: "resourceType", names: ["--resource-type"], choices: Object.keys(RESOURCE_TYPES) },
      { dest: "scope", names: ["--scope"], multi: true },
      { dest: "tenant", names: ["--tenant", "-t"] },
      { dest: "subscription", names: ["--subscription", "--name", "-n", "-s"] },
    ],
    run: async (a, env) => {
      const given = ["resource", "resourceType", "scope"].filter((k) => a[k] !== undefined);
      if (given.length > 1) throw _fail("usage error: --resource, --resource-type and --scope are mutually exclusive");
      if (a.tenant && a.subscription) throw _fail("usage error: --tenant and --subscription can't be used together");
      const scopes = a.scope as string[] | undefined;
      if (scopes && scopes.length > 1) throw _fail("The sandbox's az stand-in issues tokens for one --scope at a time");
      const resource = (a.resource as string | undefined) ??
        (a.resourceType ? RESOURCE_TYPES[a.resourceType as string] : undefined) ??
        (scopes ? scopes[0].replace(/\/\.default$/, "") : DEFAULT_TOKEN_RESOURCE);
      const sub = a.tenant ? undefined : env.subscription(a.subscription as string | undefined);
      const token = await env.userToken(resource, (a.tenant as string | undefined) ?? sub!.tenantId);
      return {
        value: {
          accessToken: token.accessToken,
          expiresOn: _localTime(token.expiresOnEpochS),
          expires_on: token.expiresOnEpochS,
          ...(sub ? { subscription: sub.subscriptionId } : {}),
          tenant: token.tenantId,
          tokenType: "Bearer",
        },
      };
    },
  },
  {
    path: "group create",
    summary: "Create a new resource group.",
    args: [
      { dest: "name", names: ["--name", "--resource-group", "-n", "-g"], required: true },
      { dest: "location", names: ["--location", "-l"], required: true },
      { dest: "tags", names: ["--tags"], multi: true },
      { dest: "managedBy", names: ["--managed-by"] },
      SUBSCRIPTION_ARG,
    ],
    run: async (a, env) => {
      const sub = env.subscription(a.subscription as string | undefined);
      const body: Record<string, unknown> = { location: a.location };
      if (a.tags) body.tags = Object.fromEntries((a.tags as string[]).map((t) => (t.includes("=") ? [t.slice(0, t.indexOf("=")), t.slice(t.indexOf("=") + 1)] : [t, ""])));
      if (a.managedBy) body.managedBy = a.managedBy;
      try {
        return { value: _groupJson(await env.armPut(_groupPath(sub.subscriptionId, a.name as string), RESOURCES_API_VERSION, sub.tenantId, body)) };
      } catch (e) {
        if (e instanceof _ArmHttpError) throw _fail(e.azMessage());
        throw e;
      }
    },
  },
  {
    path: "group show",
    summary: "Gets a resource group.",
    args: [{ dest: "name", names: ["--name", "--resource-group", "-n", "-g"], required: true }, SUBSCRIPTION_ARG],
    run: async (a, env) => {
      const sub = env.subscription(a.subscription as string | undefined);
      try {
        return { value: _groupJson((await env.arm("GET", `${_groupPath(sub.subscriptionId, a.name as string)}?api-version=${RESOURCES_API_VERSION}`, sub.tenantId)).json) };
      } catch (e) {
        if (e instanceof _ArmHttpError) throw _fail(e.azMessage(), e.status === 404 ? 3 : 1);
        throw e;
      }
    },
  },
  {
    path: "group exists",
    summary: "Check if a resource group exists.",
    args: [{ dest: "name", names: ["--name", "--resource-group", "-n", "-g"], required: true }, SUBSCRIPTION_ARG],
    run: async (a, env) => {
      const sub = env.subscription(a.subscription as string | undefined);
      // Real az sends HEAD; a GET answers the same question on any ARM implementation.
      try {
        await env.arm("GET", `${_groupPath(sub.subscriptionId, a.name as string)}?api-version=${RESOURCES_API_VERSION}`, sub.tenantId);
        return { value: true };
      } catch (e) {
        if (e instanceof _ArmHttpError && e.status === 404) return { value: false };
        if (e instanceof _ArmHttpError) throw _fail(e.azMessage());
        throw e;
      }
    },
  },
  {
    path: "deployment group create",
    summary: "Start a deployment at resource group.",
    args: [
      { dest: "resourceGroup", names: ["--resource-group", "-g"], required: true },
      { dest: "name", names: ["--name", "-n"] },
      { dest: "templateFile", names: ["--template-file", "-f"] },
      { dest: "templateUri", names: ["--template-uri", "-u"] },
      { dest: "templateSpec", names: ["--template-spec", "-s"] },
      { dest: "parameters", names: ["--parameters", "-p"], multi: true },
      { dest: "mode", names: ["--mode"], choices: ["Incremental", "Complete"] },
      { dest: "noWait", names: ["--no-wait"], flag: true },
      { dest: "noPrompt", names: ["--no-prompt"], flag: true, optionalBool: true },
      SUBSCRIPTION_ARG,
    ],
    unsupported: ["--what-if", "-c", "--confirm-with-what-if", "--rollback-on-error", "--query-string", "-q", "--aux-tenants", "--what-if-exclude-change-types", "-x", "--what-if-result-format", "-r", "--proceed-if-no-change", "--validation-level"],
    run: _deploymentCreate,
  },
  {
    path: "deployment group show",
    summary: "Show a deployment at resource group.",
    args: [
      { dest: "resourceGroup", names: ["--resource-group", "-g"], required: true },
      { dest: "name", names: ["--name", "-n"], required: true },
      SUBSCRIPTION_ARG,
    ],
    run: async (a, env) => {
      const sub = env.subscription(a.subscription as string | undefined);
      const path = `/subscriptions/${sub.subscriptionId}/resourceGroups/${a.resourceGroup}/providers/Microsoft.Resources/deployments/${encodeURIComponent(a.name as string)}`;
      try {
        return { value: _deploymentJson((await env.arm("GET", `${path}?api-version=${RESOURCES_API_VERSION}`, sub.tenantId)).json as Record<string, unknown>) };
      } catch (e) {
        if (e instanceof _ArmHttpError) throw _fail(e.azMessage(), e.status === 404 ? 3 : 1);
        throw e;
      }
    },
  },
  {
    path: "rest",
    summary: "Invoke a custom request.",
    args: [
      { dest: "method", names: ["--method", "-m"], choices: ["delete", "get", "head", "options", "patch", "post", "put"] },
      { dest: "url", names: ["--url", "--uri", "-u"], required: true },
      { dest: "body", names: ["--body", "-b"] },
      { dest: "headers", names: ["--headers"], multi: true },
      { dest: "uriParameters", names: ["--uri-parameters", "--url-parameters"], multi: true },
      { dest: "resource", names: ["--resource"] },
      { dest: "skipAuthorizationHeader", names: ["--skip-authorization-header"], flag: true },
    ],
    unsupported: ["--output-file"],
    run: _rest,
  },
  {
    path: "graph query",
    summary: "Query the resources managed by Azure Resource Manager.",
    args: [
      { dest: "graphQuery", names: ["--graph-query", "--q", "-q"], required: true },
      { dest: "first", names: ["--first"] },
      { dest: "skip", names: ["--skip"] },
      { dest: "skipToken", names: ["--skip-token"] },
      { dest: "subscriptions", names: ["--subscriptions"], multi: true },
      { dest: "managementGroups", names: ["--management-groups", "-m"], multi: true },
      { dest: "allowPartialScopes", names: ["--allow-partial-scopes", "-a"], flag: true },
    ],
    run: _graphQuery,
  },
  {
    path: "version",
    summary: "Show the versions of Azure CLI modules and extensions in JSON format by default or format configured by --output.",
    args: [],
    // deno-lint-ignore require-await -- every command's run is async: a throw becomes a rejection az reports
    run: async () => ({
      value: { "azure-cli": AZ_VERSION, "azure-cli-core": AZ_VERSION, "azure-cli-telemetry": "1.1.0", extensions: { "resource-graph": RESOURCE_GRAPH_EXTENSION_VERSION } },
    }),
  },
  {
    path: "config set",
    summary: "Set a configuration.",
    args: [{ dest: "local", names: ["--local"], flag: true }],
    positional: { dest: "keyValues", metavar: "key_value" },
    // deno-lint-ignore require-await -- every command's run is async: a throw becomes a rejection az reports
    run: async (a) => {
      // Accepted and ignored: the sandbox's az needs no extension installs or defaults.
      for (const kv of a.keyValues as string[]) {
        if (!/^[^=.\s]+\.[^=\s]+=/.test(kv)) throw _fail(`usage error: [section.name=value ...], got '${kv}'`);
      }
      return undefined;
    },
  },
];

const GROUPS = new Set(COMMANDS.flatMap((c) => c.path.split(" ").slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join(" "))));

function _versionText(): string {
  const row = (name: string, version: string) => name + version.padStart(40 - name.length);
  return [
    row("azure-cli", AZ_VERSION),
    "",
    row("core", AZ_VERSION),
    row("telemetry", "1.1.0"),
    "",
    "Extensions:",
    row("resource-graph", RESOURCE_GRAPH_EXTENSION_VERSION),
    "",
    "This is the metering sandbox's az stand-in: a local emulation of the commands this project uses.",
    "",
  ].join("\n");
}

function _groupHelp(prefix: string): string {
  const commands = COMMANDS.filter((c) => prefix === "" || c.path.startsWith(`${prefix} `));
  const lines = [`Group`, `    az${prefix ? ` ${prefix}` : ""}`, "", "Commands (sandbox stand-in):"];
  for (const c of commands) lines.push(`    ${c.path.padEnd(28)}: ${c.summary}`);
  return `${lines.join("\n")}\n`;
}

function _commandHelp(c: Command): string {
  const lines = ["", "Command", `    az ${c.path} : ${c.summary}`, "", "Arguments"];
  for (const s of c.args) lines.push(`    ${_display(s).padEnd(34)}${s.required ? "[Required]" : ""}`);
  lines.push("", "Global Arguments", "    --debug --help -h --only-show-errors --output -o --query --verbose", "");
  return lines.join("\n");
}

/**
 * Runs one az command line and returns what the real CLI would print and its exit code.
 * Never throws for anything a user can type; unexpected internal errors come back as exit 1.
 */
export async function runAz(req: AzRequest, ctx: AzContext): Promise<AzResult> {
  const env = new _Env(ctx, req);
  let args: Parsed = {};
  try {
    const argv = req.argv;
    if (argv.length === 0) return { exitCode: 0, stdout: _groupHelp(""), stderr: "" };
    if (argv[0] === "--version") return { exitCode: 0, stdout: _versionText(), stderr: "" };
    // Longest command path made of leading words.
    const words: string[] = [];
    for (const a of argv) {
      if (a.startsWith("-")) break;
      words.push(a);
    }
    let command: Command | undefined;
    for (let n = words.length; n > 0 && !command; n--) command = COMMANDS.find((c) => c.path === words.slice(0, n).join(" "));
    if (!command) {
      let known = 0;
      while (known < words.length && GROUPS.has(words.slice(0, known + 1).join(" "))) known++;
      const rest = argv.slice(known);
      if (known > 0 && (rest.length === 0 || rest.every((r) => r === "-h" || r === "--help"))) {
        return { exitCode: 0, stdout: _groupHelp(words.slice(0, known).join(" ")), stderr: "" };
      }
      const bad = words[known] ?? argv[known];
      return { exitCode: 2, stdout: "", stderr: `ERROR: '${bad}' is misspelled or not recognized by the system.\n` };
    }
    const tokens = await _expandFileArguments(argv.slice(command.path.split(" ").length), req);
    args = _parseArgs(tokens, command);
    if (args.help) return { exitCode: 0, stdout: _commandHelp(command), stderr: "" };
    const query = _compileQuery(args);
    const stdout = _format(await command.run(args, env), args, query);
    return { exitCode: 0, stdout, stderr: args.onlyShowErrors ? "" : env.warnings.map((w) => `${w}\n`).join("") };
  } catch (e) {
    const warnings = args.onlyShowErrors ? "" : env.warnings.map((w) => `${w}\n`).join("");
    if (e instanceof _AzExit || e instanceof QueryError) return { exitCode: e.exitCode, stdout: "", stderr: `${warnings}ERROR: ${e.message}\n` };
    if (e instanceof _ArmHttpError) return { exitCode: 1, stdout: "", stderr: `${warnings}ERROR: ${e.azMessage()}\n` };
    return { exitCode: 1, stdout: "", stderr: `${warnings}ERROR: The sandbox's az stand-in failed: ${(e as Error)?.stack ?? e}\n` };
  }
}
