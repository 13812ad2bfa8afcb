// The sandbox's front: Azure's public host names, locally. A proxy on one plain-HTTP port of
// 127.0.0.1 that tools reach through HTTPS_PROXY / HTTP_PROXY (no root, no /etc/hosts):
//   CONNECT <azure host>:443  the front answers 200, terminates TLS itself with a certificate
//                             for that host from the sandbox CA (issued on first use, picked by
//                             SNI), and sends each request to the service that plays the host
//   GET http://169.254.169.254/...  (plain-HTTP proxying) goes to the managed identity endpoint
//   anything else             403, and the front opens no connection for it: nothing leaves
//                             the machine.
// Which service plays which host is HOSTS below; vaults, Service Bus namespaces and storage
// accounts are looked up per request, so a vault ARM creates later is reachable at once.
import { resetSocket } from "./connections.mts";
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { checkServerIdentity, createSecureContext, TLSSocket, type PeerCertificate, type SecureContext } from "node:tls";
import { issueServerCertificate, newKeyPair } from "./ca.mts";
import type { SandboxContext } from "./context.mts";
import { vaultStore } from "../services/keyvault/store.mts";
import { namespaceStore } from "../services/servicebus/store.mts";

/** The address plain-HTTP managed identity clients call (IMDS). */
export const IMDS_HOST = "169.254.169.254";

/** Where a request for a played host goes: a base URL of the sandbox, and how the path changes. */
export interface FrontTarget {
  /** "https://127.0.0.1:<port>" (or http:// for IMDS). */
  base: string;
  /** Prepended to the request's path (Azurite's account segment). */
  pathPrefix?: string;
  /** Send Host as the target's own address instead of the public name (Azurite reads the account from a non-IP Host). */
  rewriteHost?: boolean;
}

type Resolution = FrontTarget | { status: number; message: string };

interface HostRule {
  /** Exact host, or a suffix starting with "." (one label in front of it, as Azure's names are). */
  host: string;
  /** What plays it; `label` is the first label of the host for suffix rules. */
  resolve(ctx: SandboxContext, label: string): Resolution;
}

const byName = <T extends { name: string; port: number }>(items: Iterable<T>, name: string): T | undefined => {
  for (const it of items) if (it.name.toLowerCase() === name) return it;
  return undefined;
};

const notServed = (message: string) => ({ status: 502, message });

/** Azure's public host names the front plays, and by whom. */
export const HOSTS: HostRule[] = [
  { host: "login.microsoftonline.com", resolve: (ctx) => ({ base: ctx.endpoints.entra }) },
  { host: "management.azure.com", resolve: (ctx) => ({ base: ctx.endpoints.arm }) },
  { host: "marketplaceapi.microsoft.com", resolve: (ctx) => ({ base: ctx.endpoints.metering }) },
  {
    host: "graph.microsoft.com",
    // Graph is served by whichever service sets endpoints.graph; until one does, every path is 404.
    resolve: (ctx) => {
      const graph = (ctx.endpoints as unknown as Record<string, string | undefined>).graph;
      return graph ? { base: graph } : { status: 404, message: "Microsoft Graph is not served by this sandbox." };
    },
  },
  {
    host: ".vault.azure.net",
    resolve: (ctx, label) => {
      const v = byName(vaultStore(ctx.state).values(), label);
      return v ? { base: `https://127.0.0.1:${v.port}` } : notServed(`No vault named '${label}' exists in this sandbox.`);
    },
  },
  {
    host: ".servicebus.windows.net",
    resolve: (ctx, label) => {
      const ns = byName(namespaceStore(ctx.state).values(), label);
      return ns ? { base: `https://127.0.0.1:${ns.port}` } : notServed(`No Service Bus namespace named '${label}' exists in this sandbox.`);
    },
  },
  {
    // A static website's host is <account>.z<n>.web.core.windows.net; the sandbox's zone is z6.
    host: ".z6.web.core.windows.net",
    resolve: (ctx) => ctx.endpoints.web ? { base: ctx.endpoints.web } : notServed("Blob storage is not running in this sandbox (it was started without Azurite)."),
  },
  {
    host: ".blob.core.windows.net",
    // Azurite serves one account and the sandbox's ARM maps every storage account onto it.
    resolve: (ctx) => {
      if (!ctx.azurite) return notServed("Blob storage is not running in this sandbox (it was started without Azurite).");
      const u = new URL(ctx.azurite.blobEndpoint);
      return { base: u.origin, pathPrefix: u.pathname.replace(/\/$/, ""), rewriteHost: true };
    },
  },
];

/** The rule for a host name and the label in front of a suffix; undefined = the front does not play it. */
export function ruleFor(host: string): { rule: HostRule; label: string } | undefined {
  const h = host.toLowerCase().replace(/\.$/, "");
  for (const rule of HOSTS) {
    if (rule.host.startsWith(".")) {
      if (!h.endsWith(rule.host)) continue;
      const label = h.slice(0, -rule.host.length);
      if (/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) return { rule, label };
    } else if (h === rule.host) {
      return { rule, label: "" };
    }
  }
  return undefined;
}

/** Every public host name (or `*.` pattern) the front answers, for docs and messages. */
export const PLAYED_HOSTS: string[] = HOSTS.map((r) => (r.host.startsWith(".") ? `*${r.host}` : r.host));

export interface FrontStats {
  /** CONNECT tunnels accepted. */
  tunnels: number;
  /** Requests forwarded to a sandbox service. */
  forwarded: number;
  /** CONNECTs and plain requests refused (403), by the host they asked for. */
  refused: Record<string, number>;
}

export interface Front {
  port: number;
  /** "http://127.0.0.1:<port>": the value for HTTPS_PROXY and HTTP_PROXY. */
  url: string;
  stats: FrontStats;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) a proxy does not pass on. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection", "te", "trailer", "upgrade"]);

function forwardHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function splitHostPort(authority: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority) ?? /^([^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return { host: authority.toLowerCase(), port: defaultPort };
  return { host: m[1].toLowerCase(), port: m[2] ? Number(m[2]) : defaultPort };
}

function plain(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", Connection: "close" });
  res.end(JSON.stringify({ error: { code: status === 403 ? "ForbiddenByFront" : status === 404 ? "NotFound" : "BadGateway", message } }) + "\n");
}

/** Starts the front on 127.0.0.1 (port 0 = any free port). */
export async function startFront(ctx: SandboxContext, opts: { port?: number } = {}): Promise<Front> {
  const stats: FrontStats = { tunnels: 0, forwarded: 0, refused: {} };
  const refuse = (host: string) => {
    stats.refused[host] = (stats.refused[host] ?? 0) + 1;
    ctx.log(`[front] refused ${host}: not an Azure host the sandbox plays`);
  };
  const upstream = new HttpsAgent({ keepAlive: true, ca: ctx.tls.caCertPem });
  const sockets = new Set<Socket>();
  // The CONNECT tunnel's TCP socket under each TLS socket, so a fault can reset it (a TCP RST).
  const tcpOf = new WeakMap<object, Socket>();

  // One key pair for every host certificate; a certificate per host, made on its first use.
  let keys: Promise<CryptoKeyPair> | undefined;
  const contexts = new Map<string, Promise<SecureContext>>();
  const contextFor = (host: string): Promise<SecureContext> => {
    let p = contexts.get(host);
    if (!p) {
      p = (async () => {
        keys ??= newKeyPair();
        const cert = await issueServerCertificate(ctx.tls, [host], await keys);
        return createSecureContext({ cert: cert.certPem, key: cert.keyPem });
      })();
      contexts.set(host, p);
      p.catch(() => contexts.delete(host));
    }
    return p;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, publicHost: string, target: FrontTarget, path: string) => {
    const base = new URL(target.base);
    const headers = forwardHeaders(req.headers);
    headers.host = target.rewriteHost ? base.host : publicHost;
    const send = base.protocol === "https:" ? httpsRequest : httpRequest;
    const up = send({
      protocol: base.protocol, hostname: base.hostname, port: base.port, method: req.method,
      path: (target.pathPrefix ?? "") + path, headers,
      // The service's certificate is for 127.0.0.1, not for the public name in Host (which Node would check).
      ...(base.protocol === "https:" ? { agent: upstream, checkServerIdentity: (_: string, cert: PeerCertificate) => checkServerIdentity(base.hostname, cert) } : {}),
    }, (upRes) => {
      const out = forwardHeaders(upRes.headers);
      delete out["transfer-encoding"];
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.pipe(res);
      upRes.on("error", () => res.destroy());
    });
    up.on("error", (err) => plain(res, 502, `The sandbox service for ${publicHost} did not answer: ${err.message}`));
    res.on("close", () => { if (!res.writableFinished) up.destroy(); });
    stats.forwarded++;
    req.pipe(up);
  };

  /** A request that came through a tunnel to `host` (a played host). */
  const tunnelled = (host: string) => (req: IncomingMessage, res: ServerResponse) => {
    const found = ruleFor(host)!;
    const r = found.rule.resolve(ctx, found.label);
    if ("status" in r) {
      req.resume();
      plain(res, r.status, r.message);
      return;
    }
    if (found.rule.host === ".blob.core.windows.net") return storageWithFaults(req, res, host, r);
    forward(req, res, host, r, req.url ?? "/");
  };

  // Azurite is a process of its own, so faults on blob storage are injected here, on the way to
  // it, with the sandbox's fault rules (service "storage", route = the request's `comp`, e.g.
  // "appendblock", "lease", or "blob" for a plain blob request): status (a storage error body),
  // delay, reset (the connection cut before Azurite sees the request) and drop (Azurite does
  // the work, and the answer is lost: the case a conditional append must survive).
  const cut = (req: IncomingMessage) => resetSocket(tcpOf.get(req.socket) ?? req.socket);
  const storageWithFaults = (req: IncomingMessage, res: ServerResponse, host: string, r: FrontTarget) => {
    const path = req.url ?? "/";
    const comp = new URL(path, "https://x").searchParams.get("comp") ?? "blob";
    const method = req.method ?? "GET";
    ctx.obs.count("storage", `${method} ${comp}`);
    const fault = ctx.obs.takeFault("storage", method, comp, path);
    if (fault?.kind === "reset") {
      req.resume();
      cut(req);
      return;
    }
    if (fault?.kind === "status") {
      req.resume();
      const status = fault.status ?? 500;
      const code = status === 503 ? "ServerBusy" : status === 500 ? "InternalError" : "InjectedFault";
      res.writeHead(status, { "Content-Type": "application/xml", "x-ms-error-code": code, ...(fault.retryAfter !== undefined ? { "Retry-After": String(fault.retryAfter) } : {}) });
      res.end(`<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>Injected HTTP ${status}.</Message></Error>`);
      return;
    }
    const go = () => {
      if (fault?.kind === "drop") {
        // Forwarded whole; the client's connection is cut once Azurite has answered.
        const original = res.writeHead.bind(res);
        res.writeHead = ((...args: Parameters<ServerResponse["writeHead"]>) => {
          cut(req);
          return original(...args);
        }) as ServerResponse["writeHead"];
      }
      forward(req, res, host, r, path);
    };
    if (fault?.kind === "delay") setTimeout(go, fault.delayMs ?? 0);
    else go();
  };

  const server: Server = createHttpServer((req, res) => {
    // Plain-HTTP proxying: the request line carries an absolute URL.
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      req.resume();
      plain(res, 400, `This is the sandbox's proxy (${PLAYED_HOSTS.join(", ")} over CONNECT; http://${IMDS_HOST} plain). Set HTTPS_PROXY/HTTP_PROXY to it.`);
      return;
    }
    if (url.protocol !== "http:" || url.hostname !== IMDS_HOST || (url.port && url.port !== "80")) {
      req.resume();
      refuse(url.host);
      plain(res, 403, `The sandbox's proxy does not reach ${url.host}: plain HTTP is proxied only for ${IMDS_HOST} (managed identity).`);
      return;
    }
    forward(req, res, url.host, { base: ctx.endpoints.managedIdentity }, url.pathname + url.search);
  });

  server.on("connect", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const { host, port } = splitHostPort(req.url ?? "", 443);
    const found = port === 443 ? ruleFor(host) : undefined;
    if (!found) {
      refuse(`${host}:${port}`);
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n` +
        `The sandbox's proxy does not reach ${host}:${port}; it plays ${PLAYED_HOSTS.join(", ")} on port 443.\n`);
      return;
    }
    const r = found.rule.resolve(ctx, found.label);
    if ("status" in r && r.status === 502) {
      // As a name that does not resolve: the tunnel fails.
      socket.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${r.message}\n`);
      return;
    }
    stats.tunnels++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    contextFor(host).then((secureContext) => {
      if (socket.destroyed) return;
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) socket.unshift(head);
      const tlsSocket = new TLSSocket(socket, {
        isServer: true,
        ALPNProtocols: ["http/1.1"],
        // The certificate of the host the tunnel was asked for, or of the (played) host SNI names.
        secureContext,
        SNICallback: (servername, cb) => {
          const name = ruleFor(servername) ? servername.toLowerCase() : host;
          contextFor(name).then((c) => cb(null, c), (err) => cb(err as Error));
        },
      });
      tlsSocket.on("error", () => tlsSocket.destroy());
      tcpOf.set(tlsSocket, socket);
      const inner = createHttpServer(tunnelled(host));
      inner.keepAliveTimeout = 5_000;
      inner.emit("connection", tlsSocket);
    }, (err) => {
      ctx.log(`[front] no certificate for ${host}: ${(err as Error).message}`);
      socket.end("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n");
    });
  });

  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(opts.port ?? 0, "127.0.0.1", () => res());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () => new Promise<void>((res) => {
      for (const s of sockets) s.destroy();
      upstream.destroy();
      server.close(() => res());
      (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    }),
  };
}
