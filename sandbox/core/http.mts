// The service framework every emulated service uses: a route table in one place, request
// ids, per-route counters, the fault hook, and wire-format errors from the service's own
// error factory. Transport (servers) lives in main.mts, which tells this layer how to cut a
// connection (connections.mts); state lives in state.mts.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { cpuUsage } from "node:process";
import { resetSocket } from "./connections.mts";

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; strings and bytes as they are; undefined = empty body. */
  body?: unknown;
}

export interface RouteContext {
  req: IncomingMessage;
  method: string;
  url: URL;
  params: Record<string, string>;
  body: Buffer;
  /** The route pattern that matched, e.g. "/:tenant/oauth2/v2.0/token". */
  route: string;
  service: string;
  requestId: string;
  /** Local port the request came in on (Key Vault tells vaults apart by it). */
  localPort: number;
  header(name: string): string | undefined;
  text(): string;
}

export interface Route {
  method: string;
  /** Segments: literal, `:name` (one segment), `*name` (the rest, may be empty). */
  path: string;
  handler: (ctx: RouteContext) => Reply | Promise<Reply>;
}

export interface ServiceDef {
  name: string;
  routes: Route[];
  /** The answer for a path or method no route serves (services answer in their own wire format; never 200). */
  notFound(ctx: RouteContext, allowedMethods: string[]): Reply;
  /** Turns an injected fault status into the service's wire format. */
  faultReply?(ctx: RouteContext, status: number): Reply;
  /** Case-insensitive path matching (ARM); default false. */
  caseInsensitive?: boolean;
}

/** Throw from a handler to answer with a prepared reply. */
export class HttpReplyError extends Error {
  reply: Reply;
  constructor(reply: Reply) {
    super(`HTTP ${reply.status}`);
    this.reply = reply;
  }
}

// ---------------------------------------------------------------- faults and counters

export type FaultKind = "status" | "delay" | "reset" | "drop";

export interface FaultSpec {
  service: string;
  method?: string;
  /** A route pattern exactly as registered, e.g. "/api/batchUsageEvent". */
  route?: string;
  /** Or a path prefix. */
  path?: string;
  kind: FaultKind;
  status?: number;
  retryAfter?: number;
  body?: unknown;
  delayMs?: number;
  /** How many requests it hits; -1 = until cleared. Default 1. */
  times?: number;
  /** Instead of times: hit each matching request with this probability (0..1). */
  rate?: number;
}

export interface Fault extends FaultSpec {
  id: string;
  hits: number;
}

export class Observability {
  faults: Fault[] = [];
  counters: Record<string, Record<string, number>> = {};
  /**
   * CPU seconds (user + system) the sandbox spent on named pieces of work that a real Azure service
   * does on its own hardware (`keyvault.sign`: Key Vault's RSA private-key operations), so that a
   * benchmark can tell the emulator's overhead from the emulated work. Only synchronous work is
   * measured, so nothing else runs in between.
   */
  cpuSeconds: Record<string, number> = {};

  /** Runs `fn` (synchronous) and adds its CPU time to `cpuSeconds[what]`. */
  measureCpu<T>(what: string, fn: () => T): T {
    const before = cpuUsage();
    try {
      return fn();
    } finally {
      const d = cpuUsage(before);
      this.cpuSeconds[what] = (this.cpuSeconds[what] ?? 0) + (d.user + d.system) / 1e6;
    }
  }

  count(service: string, key: string): void {
    (this.counters[service] ??= {})[key] = ((this.counters[service] ?? {})[key] ?? 0) + 1;
  }

  /** Adds every fault of `specs`, or none when one of them is malformed (TypeError). */
  addFaults(specs: FaultSpec[]): Fault[] {
    for (const spec of specs) _checkFault(spec);
    const added = specs.map((spec): Fault => ({ ...spec, id: randomUUID(), hits: 0, times: spec.rate !== undefined ? -1 : spec.times ?? 1 }));
    this.faults.push(...added);
    return added;
  }

  /** The fault that hits this request, if any (consumes one of its `times`). */
  takeFault(service: string, method: string, route: string, path: string): Fault | undefined {
    for (const f of this.faults) {
      if (f.service !== service) continue;
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (f.route && f.route !== route) continue;
      if (f.path && !path.startsWith(f.path)) continue;
      if (f.rate !== undefined && Math.random() >= f.rate) continue;
      f.hits++;
      if (f.times !== -1) {
        f.times!--;
        if (f.times === 0) this.faults = this.faults.filter((x) => x !== f);
      }
      return f;
    }
    return undefined;
  }
}

/** Throws a TypeError saying what is wrong with a fault spec from the admin API. */
function _checkFault(spec: FaultSpec): void {
  const kinds: FaultKind[] = ["status", "delay", "reset", "drop"];
  if (!_isObject(spec)) throw new TypeError(`Cannot add fault: a fault must be a JSON object, got ${_jsonKind(spec)}`);
  if (typeof spec.service !== "string" || !spec.service) throw new TypeError("Cannot add fault: 'service' is required");
  if (!kinds.includes(spec.kind)) throw new TypeError(`Cannot add fault: 'kind' must be one of ${kinds.join(", ")}`);
  if (spec.kind === "status" && !(Number.isInteger(spec.status) && spec.status! >= 100 && spec.status! <= 599)) {
    throw new TypeError("Cannot add fault: kind 'status' needs an integer 'status' 100..599");
  }
  if (spec.kind === "delay" && !(typeof spec.delayMs === "number" && spec.delayMs >= 0)) {
    throw new TypeError("Cannot add fault: kind 'delay' needs 'delayMs' >= 0");
  }
  if (spec.rate !== undefined && !(spec.rate >= 0 && spec.rate <= 1)) throw new TypeError("Cannot add fault: 'rate' must be within 0..1");
  if (spec.times !== undefined && !(Number.isInteger(spec.times) && (spec.times >= 1 || spec.times === -1))) {
    throw new TypeError("Cannot add fault: 'times' must be a positive integer or -1");
  }
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** How a JSON value that is not the expected object reads in a message: `null`, `an array`, `a number`. */
function _jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

// ---------------------------------------------------------------- routing

interface CompiledRoute extends Route {
  segments: string[];
  /** The segments lower-cased (for case-insensitive services), compared without allocating per request. */
  lowerSegments: string[];
  /** Whether the last segment is a `*rest` wildcard (any number of segments from there). */
  wildcard: boolean;
}

function compileRoute(r: Route): CompiledRoute {
  const segments = splitPath(r.path);
  return { ...r, method: r.method.toUpperCase(), segments, lowerSegments: segments.map((x) => x.toLowerCase()), wildcard: segments.some((x) => x.startsWith("*")) };
}

function splitPath(p: string): string[] {
  return p.split("/").filter((s) => s.length > 0);
}

/** A path segment percent-decoded; a malformed escape (`%E0%A4%A`) stays as sent instead of throwing outside any handler. */
function _decodeSegment(seg: string): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    return seg;
  }
}

/**
 * The route's parameters for the request path `segs` (`lowerSegs`: the same, lower-cased), or
 * undefined. Every request tries the routes in order, so a route that cannot match is rejected on
 * its segment count and literal segments before any parameter is decoded.
 */
function match(route: CompiledRoute, segs: string[], lowerSegs: string[], ci: boolean): Record<string, string> | undefined {
  if (!route.wildcard && route.segments.length !== segs.length) return undefined;
  for (let i = 0; i < route.segments.length; i++) {
    const pat = route.segments[i];
    if (pat.startsWith("*")) break;
    if (i >= segs.length) return undefined;
    if (pat.startsWith(":")) continue;
    if (ci ? route.lowerSegments[i] !== lowerSegs[i] : pat !== segs[i]) return undefined;
  }
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const pat = route.segments[i];
    if (pat.startsWith("*")) {
      params[pat.slice(1)] = segs.slice(i).join("/");
      return params;
    }
    if (pat.startsWith(":")) params[pat.slice(1)] = _decodeSegment(segs[i]);
  }
  return params;
}

/**
 * The request target as a URL. An origin-form target is a path even when it starts with `//`
 * (`new URL("//subscriptions/x", base)` would read `subscriptions` as a host); runs of `/` count
 * as one, so `//subscriptions/…` (a base URL with a trailing slash plus an id) is `/subscriptions/…`.
 */
export function requestUrl(target: string | undefined): URL {
  const t = target ?? "/";
  const url = t.startsWith("/") ? new URL(`https://sandbox.invalid${t}`) : new URL(t, "https://sandbox.invalid");
  if (url.pathname.includes("//")) url.pathname = url.pathname.replace(/\/{2,}/g, "/");
  return url;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * The request body, or a 413 (then the connection closes) when it is over MAX_BODY_BYTES. An
 * oversized body is still read to its end, and dropped: a socket closed with unread bytes
 * answers them with a RST, which can destroy the 413 before the client has read it. A
 * deliberate shortcut: there is no bound on what is read and dropped (callers are tests).
 */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on("end", () => {
      if (size <= MAX_BODY_BYTES) resolve(Buffer.concat(chunks));
      else {
        reject(new HttpReplyError({
          status: 413,
          headers: { Connection: "close" },
          body: { error: { code: "RequestEntityTooLarge", message: "The request body is too large." } },
        }));
      }
    });
    req.on("error", reject);
  });
}

export function sendReply(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  let payload: Buffer | undefined;
  if (reply.body === undefined || reply.body === null) payload = undefined;
  else if (Buffer.isBuffer(reply.body)) payload = reply.body;
  else if (reply.body instanceof Uint8Array) payload = Buffer.from(reply.body);
  else if (typeof reply.body === "string") payload = Buffer.from(reply.body);
  else {
    payload = Buffer.from(JSON.stringify(reply.body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["Content-Type"] = "application/json; charset=utf-8";
  }
  headers["Content-Length"] = String(payload?.length ?? 0);
  res.writeHead(reply.status, headers);
  res.end(payload);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds the request listener of one service. `cutConnection` ends the connection of a
 * request without an answer (faults `reset` and `drop`); the transport passes one that
 * reaches the TCP socket under TLS (connections.mts), the default resets `req.socket`.
 */
export function createServiceHandler(
  def: ServiceDef,
  obs: Observability,
  log: (msg: string) => void = () => {},
  cutConnection: (socket: Socket) => void = resetSocket,
) {
  const routes: CompiledRoute[] = def.routes.map(compileRoute);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    const url = requestUrl(req.url);
    const segs = splitPath(url.pathname);
    const lowerSegs = segs.map((x) => x.toLowerCase());
    let matched: { route: CompiledRoute; params: Record<string, string> } | undefined;
    const allowed: string[] = [];
    for (const r of routes) {
      const p = match(r, segs, lowerSegs, def.caseInsensitive ?? false);
      if (!p) continue;
      if (r.method === method) {
        matched = { route: r, params: p };
        break;
      }
      allowed.push(r.method);
    }
    const routeName = matched?.route.path ?? "(unmatched)";
    let bodyBuf: Buffer = Buffer.alloc(0);
    const ctx: RouteContext = {
      req,
      method,
      url,
      params: matched?.params ?? {},
      get body() {
        return bodyBuf;
      },
      route: routeName,
      service: def.name,
      requestId: randomUUID(),
      localPort: req.socket.localPort ?? 0,
      header: (n) => {
        const v = req.headers[n.toLowerCase()];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      text: () => bodyBuf.toString("utf8"),
    };
    obs.count(def.name, `${method} ${routeName}`);
    try {
      bodyBuf = await readBody(req);
      const fault = obs.takeFault(def.name, method, routeName, url.pathname);
      if (fault?.kind === "reset") {
        cutConnection(req.socket);
        return;
      }
      if (fault?.kind === "delay") await sleep(fault.delayMs ?? 0);
      if (fault?.kind === "status") {
        const base = fault.body !== undefined
          ? { status: fault.status!, body: fault.body }
          : def.faultReply?.(ctx, fault.status!) ?? { status: fault.status!, body: { error: { code: "InjectedFault", message: `Injected HTTP ${fault.status}.` } } };
        const headers = { ...(base.headers ?? {}) };
        if (fault.retryAfter !== undefined) headers["Retry-After"] = String(fault.retryAfter);
        sendReply(res, { ...base, headers });
        return;
      }
      let reply: Reply;
      if (!matched) reply = def.notFound(ctx, allowed);
      else {
        try {
          reply = await matched.route.handler(ctx);
        } catch (err) {
          if (err instanceof HttpReplyError) reply = err.reply;
          else throw err;
        }
      }
      if (fault?.kind === "drop") {
        // The request was processed (state changed); the caller never learns the outcome.
        cutConnection(req.socket);
        return;
      }
      if (!res.destroyed) sendReply(res, reply);
    } catch (err) {
      if (err instanceof HttpReplyError) {
        if (!res.destroyed && !res.headersSent) sendReply(res, err.reply);
        return;
      }
      // A sandbox bug: loud in the log and on the wire, never a silent success.
      log(`[${def.name}] ${method} ${url.pathname}: internal error: ${(err as Error).stack ?? err}`);
      if (!res.destroyed && !res.headersSent) {
        sendReply(res, { status: 500, body: { error: { code: "SandboxInternalError", message: String((err as Error).message ?? err) } } });
      }
    }
  };
}

/** Parses a JSON body or throws the service's own bad-request reply. */
export function parseJsonBody<T = unknown>(ctx: RouteContext, bad: (reason: string) => Reply): T {
  const text = ctx.text();
  if (!text.trim()) throw new HttpReplyError(bad("The request body is empty."));
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new HttpReplyError(bad("The request body is not valid JSON."));
  }
}

/** Parses a JSON body that must be an object (not null, an array or a scalar), or throws the service's own bad-request reply. */
export function parseJsonObject<T extends object = Record<string, unknown>>(ctx: RouteContext, bad: (reason: string) => Reply): T {
  const value = parseJsonBody(ctx, bad);
  if (!_isObject(value)) throw new HttpReplyError(bad(`The request body must be a JSON object, got ${_jsonKind(value)}.`));
  return value as T;
}

/** An in-process request: what a service does when it calls one of its own routes (ARM deploying a template). */
export interface InternalRequest {
  method: string;
  /** Path and query, e.g. "/subscriptions/…?api-version=2023-01-31". */
  url: string;
  headers: Record<string, string>;
  body?: unknown;
}

/**
 * Runs a request through a service's route table without a socket: the same matching, the same
 * handlers, the same replies as over HTTP (no fault injection, no request counters: the request
 * never reached the wire).
 */
export function createInProcessDispatcher(def: ServiceDef): (r: InternalRequest) => Promise<Reply> {
  const routes: CompiledRoute[] = def.routes.map(compileRoute);
  return async (r) => {
    const method = r.method.toUpperCase();
    const url = new URL(r.url, "https://sandbox.invalid");
    const segs = splitPath(url.pathname);
    const lowerSegs = segs.map((x) => x.toLowerCase());
    let matched: { route: CompiledRoute; params: Record<string, string> } | undefined;
    const allowed: string[] = [];
    for (const route of routes) {
      const p = match(route, segs, lowerSegs, def.caseInsensitive ?? false);
      if (!p) continue;
      if (route.method === method) {
        matched = { route, params: p };
        break;
      }
      allowed.push(route.method);
    }
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(typeof r.body === "string" ? r.body : JSON.stringify(r.body));
    const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const ctx: RouteContext = {
      req: { headers, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage,
      method,
      url,
      params: matched?.params ?? {},
      body,
      route: matched?.route.path ?? "(unmatched)",
      service: def.name,
      requestId: randomUUID(),
      localPort: 0,
      header: (n) => headers[n.toLowerCase()],
      text: () => body.toString("utf8"),
    };
    if (!matched) return def.notFound(ctx, allowed);
    try {
      return await matched.route.handler(ctx);
    } catch (err) {
      if (err instanceof HttpReplyError) return err.reply;
      throw err;
    }
  };
}
