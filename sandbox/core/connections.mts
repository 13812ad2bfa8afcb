// The transport's TCP connections, so that a fault can cut the one under a request with a TCP
// RST, as a dying server or a middlebox would. Under TLS, `req.socket` is a TLSSocket whose
// resetAndDestroy() throws on Node (its handle is the TLS wrap, not TCP) and, on Deno, closes
// without a RST. The TCP socket the server accepted can be reset on every runtime: the
// server's 'connection' event hands it out, and it is found again by the connection's
// addresses and ports, which the TLS socket over it reports too.
import type { Server, Socket } from "node:net";

/** Sends a TCP RST and destroys the socket where the runtime can; otherwise just destroys it. */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  const s = socket as Socket & { resetAndDestroy?: () => void };
  try {
    if (typeof s.resetAndDestroy === "function") {
      s.resetAndDestroy();
      return;
    }
  } catch {
    // Not a TCP handle (a TLS socket on Node): fall through.
  }
  socket.destroy();
}

function _key(socket: Socket): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  return localPort && remotePort ? `${localAddress}|${localPort}|${remoteAddress}|${remotePort}` : undefined;
}

/** The open TCP connections of the servers it tracks. */
export class ConnectionTable {
  #sockets = new Map<string, Socket>();

  /** Records every connection `server` accepts until it closes. */
  track(server: Server): void {
    server.on("connection", (socket: Socket) => {
      const key = _key(socket);
      if (!key) return;
      this.#sockets.set(key, socket);
      socket.once("close", () => {
        if (this.#sockets.get(key) === socket) this.#sockets.delete(key);
      });
    });
  }

  /**
   * Cuts the connection a request came on (`req.socket`, plain or TLS) without another byte:
   * resets the TCP socket under it, then destroys the TLS layer, if any.
   */
  cut = (socket: Socket): void => {
    const key = _key(socket);
    const tcp = (key && this.#sockets.get(key)) || socket;
    resetSocket(tcp);
    if (tcp !== socket) socket.destroy();
  };
}
