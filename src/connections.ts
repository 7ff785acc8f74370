import type { createServer as createHttp1Server, IncomingMessage, ServerResponse } from "node:http";
import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "./platform/logger.js";
import { requestIdKey } from "./rpc/context.js";
import { drainedError } from "./rpc/health.js";

/**
 * Connection bookkeeping of the one public port: protocol sniffing, idle
 * HTTP/2 sessions, and the drain (HTTP/2 GOAWAY, HTTP/1.1 keep-alive, calls
 * that arrive or are still running).
 */

const HTTP2_PREFACE = Buffer.from("PRI");

export interface TrackedSession {
  /**
   * The server is draining: the GOAWAY goes out as soon as the session has no
   * open stream (at once if it is idle now), never while one is open.
   */
  drain(): void;
}

/**
 * Idle timeout and drain of one HTTP/2 session.
 *
 * An HTTP/2 session with no open stream for `idleMs` gets a GOAWAY
 * (session.close()); one with a stream open is never cut, however long the
 * stream lasts (WatchQueueStatus). A peer that does not take the GOAWAY
 * within `graceMs` (node keeps a session whose writes are pending) is
 * disconnected, unless a stream it opened just before is still running.
 *
 * Why a draining session waits for its streams before the GOAWAY: node's
 * session.goaway() is nghttp2_submit_goaway(), and once any GOAWAY has gone
 * out nghttp2 ignores every new stream, whatever last-stream-id the frame
 * carried (only nghttp2_submit_shutdown_notice() would not, and node does not
 * expose it). So the gRPC two-step GOAWAY (2^31-1 and a PING, then the real
 * last stream id) cannot be done here: a call the client sent before it read
 * the first GOAWAY is ignored, then reset with REFUSED_STREAM by the second,
 * which grpc-js retries but connect-node (2.1) reports as INTERNAL. Instead a
 * session with open streams gets no GOAWAY yet, the calls that arrive on it
 * are answered UNAVAILABLE (createDrainInterceptor), and it gets its GOAWAY
 * the moment it is idle: then nothing of the client's is in flight, unless it
 * starts a call in that very round trip.
 */
export function trackSession(session: Http2Session, idleMs: number, graceMs: number): TrackedSession {
  let open = 0;
  let served = false;
  let draining = false;
  let idle: NodeJS.Timeout | undefined;
  let grace: NodeJS.Timeout | undefined;
  const goAway = () => {
    clearTimeout(idle);
    if (session.closed || session.destroyed) return;
    session.close();
    grace = setTimeout(() => open === 0 && session.destroy(), graceMs);
  };
  const arm = () => {
    idle = setTimeout(goAway, idleMs);
  };
  session.on("stream", (stream) => {
    open++;
    served = true;
    clearTimeout(idle);
    stream.once("close", () => {
      if (--open > 0 || session.closed) return;
      if (draining) goAway();
      else arm();
    });
  });
  session.once("close", () => {
    clearTimeout(idle);
    clearTimeout(grace);
  });
  arm();
  return {
    drain() {
      draining = true;
      clearTimeout(idle);
      // A session that has not opened its first stream yet is about to: its
      // calls are answered UNAVAILABLE, then it goes. (One that never does is
      // closed by the head deadline of its socket.)
      if (open === 0 && served) goAway();
    },
  };
}

/**
 * HTTP/1.1 keep-alive connections during a drain: idle sockets close at once
 * and busy ones right after their last response (node's closeIdleConnections()
 * only does the first, and only for connections it accepted itself), so open
 * requests are counted per socket here. A socket that has not carried a
 * request yet is not idle but new, its request likely on the way: closing it
 * would reset that request (ECONNRESET, which connect-node reports as
 * ABORTED), so it is answered (UNAVAILABLE, `connection: close`) instead.
 */
export function trackHttp1Calls(h1: ReturnType<typeof createHttp1Server>, draining: AbortSignal) {
  const open = new Map<Socket, Set<ServerResponse>>();
  const served = new WeakSet<Socket>();
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
    served.add(socket);
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
        if (served.has(socket)) endIfIdle(socket);
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

export interface DrainSignals {
  /** Aborted when the drain begins. */
  draining: AbortSignal;
  /** Aborted when SHUTDOWN_GRACE is over. */
  graceOver: AbortSignal;
}

/**
 * Calls during a drain, first in the pipeline after the "entered" mark.
 *
 * A call that arrives once the drain has begun is answered UNAVAILABLE and
 * never runs, so its client may safely try another instance; it goes through
 * `logged` (the logging interceptor) for its one log line and metric sample.
 * `exempt` calls (health checks, which then report NOT_SERVING) still run.
 *
 * A call still running when the grace period ends is answered UNAVAILABLE
 * there and then, so its client reads a status instead of a reset connection
 * (connect-node reports a reset as ABORTED). Its handler is not stopped;
 * whatever it finishes is logged by the pipeline if the process is still up.
 */
export function createDrainInterceptor(
  { draining, graceOver }: DrainSignals,
  exempt: (service: string) => boolean,
  logged: Interceptor,
  log: Logger,
): Interceptor {
  const refuse = logged(async () => {
    throw drainedError();
  });
  return (next) => async (req) => {
    if (draining.aborted && !exempt(req.service.typeName)) return refuse(req);
    const cutOff = () => {
      const requestId = req.contextValues.get(requestIdKey);
      log.warn({ procedure: `/${req.service.typeName}/${req.method.name}`, requestId }, "rpc cut off: still running when SHUTDOWN_GRACE ended");
      const err = new ConnectError("server shut down before the call finished", Code.Unavailable);
      err.metadata.set("x-request-id", requestId);
      return err;
    };
    const res = await untilAborted(next(req), graceOver, cutOff);
    if (!res.stream) return res;
    return { ...res, message: streamUntilAborted(res.message, graceOver, cutOff) };
  };
}

/** `work`, or a rejection with `error()` once `signal` aborts, whichever comes first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, error: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(error());
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(error());
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}

async function* streamUntilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal, error: () => Error): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const r = await untilAborted(it.next(), signal, error);
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    // Cut off or closed early: let the source know, without waiting for it.
    if (!done) it.return?.()?.catch(() => undefined);
  }
}
