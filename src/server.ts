import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { Code, cors as connectCors } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Deps } from "./deps.js";
import { createRoutes, createHealthState } from "./routes.js";
import { ServingStatus, type HealthState } from "./rpc/health.js";
import { createCallContext, createInterceptors } from "./rpc/pipeline.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;
type Handler = (req: Request, res: Response) => void;

export interface AppServer {
  health: HealthState;
  /** Resolves with the bound port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /**
   * Graceful stop: report NOT_SERVING, stop accepting, end server streams with
   * UNAVAILABLE, give unary calls up to `graceMs` to finish, then cut what is left.
   */
  close(graceMs?: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI");
const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * One port for every client: connections that open with the HTTP/2 preface go
 * to the h2c server (gRPC, and Connect/gRPC-Web over HTTP/2); the rest go to
 * an HTTP/1.1 server (browsers speaking Connect or gRPC-Web). Both run the same
 * Connect handler.
 */
export function createServer(deps: Deps): AppServer {
  const health = createHealthState();
  const draining = new AbortController();
  const connect = connectNodeAdapter({
    routes: createRoutes(deps, health, draining.signal),
    interceptors: createInterceptors({ ...deps, trustProxyHops: deps.config.connections.trustProxyHops }),
    contextValues: createCallContext(deps.config.connections.trustProxyHops),
    readMaxBytes: MAX_MESSAGE_BYTES,
    fallback: (req, res) => httpEndpoints(deps, health, req, res as Response),
  });
  const handler = withCors(deps.config.corsOrigins, connect as Handler);

  const h2 = createHttp2Server({}, handler);
  const sessions = new Set<Http2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  const h1 = createHttp1Server();
  const h1Calls = trackHttp1Calls(h1, draining.signal);
  h1.on("request", handler);
  const sockets = new Set<Socket>();
  const unrouted = new Set<Socket>();
  const tcp = createNetServer((socket) => {
    sockets.add(socket);
    unrouted.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      unrouted.delete(socket);
    });
    socket.on("error", () => socket.destroy());
    routeConnection(socket, (isH2) => {
      unrouted.delete(socket);
      (isH2 ? h2 : h1).emit("connection", socket);
    });
  });

  return {
    health,
    listen(port, host = deps.config.host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          resolve((tcp.address() as AddressInfo).port);
        });
      });
    },
    async close(graceMs = deps.config.shutdownGraceMs) {
      health.setAll(ServingStatus.NOT_SERVING);
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      draining.abort();
      for (const s of sessions) s.close();
      h1Calls.closeIdle();
      for (const s of unrouted) s.destroy(); // connected, but never sent a byte
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/**
 * HTTP/1.1 keep-alive connections during a drain. `h1` never listens itself
 * (connections are handed to it), so its own closeIdleConnections() sees
 * nothing: count open requests per socket here instead. Once draining, idle
 * sockets close at once and busy ones right after their last response.
 */
function trackHttp1Calls(h1: ReturnType<typeof createHttp1Server>, draining: AbortSignal) {
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
function routeConnection(socket: Socket, route: (isH2: boolean) => void): void {
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

/** Answers CORS preflights for the configured origins and decorates their responses. */
function withCors(origins: string[], next: Handler): Handler {
  if (origins.length === 0) return next;
  const anyOrigin = origins.includes("*");
  const allowMethods = connectCors.allowedMethods.join(", ");
  const allowHeaders = [...connectCors.allowedHeaders, "X-Queue-Token", "X-Request-Id", "Authorization"].join(", ");
  const exposeHeaders = [...connectCors.exposedHeaders, "X-Request-Id"].join(", ");
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin && (anyOrigin || origins.includes(origin))) {
      res.setHeader("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
      res.setHeader("Vary", "Origin");
      res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        res.setHeader("Access-Control-Allow-Methods", allowMethods);
        res.setHeader("Access-Control-Allow-Headers", allowHeaders);
        res.setHeader("Access-Control-Max-Age", "7200");
        res.writeHead(204);
        res.end();
        return;
      }
    }
    next(req, res);
  };
}

/** Plain HTTP endpoints beside the RPCs: Prometheus metrics and a liveness probe. */
function httpEndpoints(deps: Deps, health: HealthState, req: Request, res: Response): void {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method === "GET" && path === "/metrics") {
    deps.metrics.registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
        res.end(body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
    return;
  }
  if (req.method === "GET" && path === "/healthz") {
    const serving = health.get("") === ServingStatus.SERVING;
    res.writeHead(serving ? 200 : 503, { "content-type": "text/plain" });
    res.end(serving ? "ok\n" : "shutting down\n");
    return;
  }
  const contentType = String(req.headers["content-type"] ?? "");
  if (req.method === "POST" && contentType.startsWith("application/grpc")) {
    // A gRPC client calling a method this server does not have: answer the way
    // gRPC servers do (a trailers-only UNIMPLEMENTED), not with a bare HTTP 404.
    const status = {
      "content-type": contentType.split(";")[0],
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": grpcPercentEncode(`unknown method ${path}`),
    };
    req.resume(); // whatever the client sends is discarded
    if ("stream" in res) {
      // Trailers-only: the status travels in a HEADERS frame that ends the stream.
      res.stream.respond({ ":status": 200, ...status }, { endStream: true });
    } else {
      res.writeHead(200, status);
      res.end();
    }
    return;
  }
  // Connect clients read HTTP 404 as Code.Unimplemented.
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
}

/** grpc-message encoding: printable ASCII except "%" goes as is, everything else percent-encoded. */
function grpcPercentEncode(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}
