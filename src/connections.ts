import type { createServer as createHttp1Server, IncomingMessage, ServerResponse } from "node:http";
import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";

/** Connection bookkeeping of the one public port: protocol sniffing, idle HTTP/2 sessions, HTTP/1.1 calls during a drain. */

const HTTP2_PREFACE = Buffer.from("PRI");

/**
 * An HTTP/2 session with no open stream for `idleMs` gets a GOAWAY
 * (session.close()); one with a stream open is never cut, however long the
 * stream lasts (WatchQueueStatus). A peer that does not take the GOAWAY
 * within `graceMs` (node keeps a session whose writes are pending) is
 * disconnected, unless a stream it opened just before is still running.
 */
export function closeWhenIdle(session: Http2Session, idleMs: number, graceMs: number): void {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  let grace: NodeJS.Timeout | undefined;
  const arm = () => {
    idle = setTimeout(() => {
      session.close();
      grace = setTimeout(() => open === 0 && session.destroy(), graceMs);
    }, idleMs);
  };
  session.on("stream", (stream) => {
    open++;
    clearTimeout(idle);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => {
    clearTimeout(idle);
    clearTimeout(grace);
  });
  arm();
}

/**
 * HTTP/1.1 keep-alive connections during a drain: idle sockets close at once
 * and busy ones right after their last response (node's closeIdleConnections()
 * only does the first, and only for connections it accepted itself), so open
 * requests are counted per socket here.
 */
export function trackHttp1Calls(h1: ReturnType<typeof createHttp1Server>, draining: AbortSignal) {
  const open = new Map<Socket, Set<ServerResponse>>();
  const endIfIdle = (socket: Socket) => {
    if (open.get(socket)?.size === 0) socket.end();
  };
  h1.on("connection", (socket: Socket) => {
    open.set(socket, new Set());
    socket.on("close", () => open.delete(socket));
  });
  // Registered before the handler, so the header is set before any response starts.
  h1.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as Socket;
    const calls = open.get(socket);
    if (!calls) return;
    calls.add(res);
    if (draining.aborted) res.setHeader("connection", "close");
    res.on("close", () => {
      calls.delete(res);
      if (draining.aborted) endIfIdle(socket);
    });
  });
  return {
    closeIdle() {
      for (const [socket, calls] of open) {
        for (const res of calls) if (!res.headersSent) res.setHeader("connection", "close");
        endIfIdle(socket);
      }
    },
  };
}

/** Reads just enough of a new connection to tell h2c from HTTP/1.1, then hands it over. */
export function routeConnection(socket: Socket, route: (isH2: boolean) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, HTTP2_PREFACE.length);
    const isH2 = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
    if (isH2 && head.length < HTTP2_PREFACE.length) return; // need more bytes
    socket.off("data", onData);
    socket.pause();
    socket.unshift(head);
    route(isH2);
    if (!isH2) socket.resume();
  };
  socket.on("data", onData);
}
