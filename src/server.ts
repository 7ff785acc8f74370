import { createServer as createHttp1Server } from "node:http";
import { createServer as createHttp2Server, type Http2Session } from "node:http2";
import { setMaxListeners } from "node:events";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { TlsConfig } from "./config.js";
import type { Deps } from "./deps.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createDrainInterceptor, routeConnection, trackHttp1Calls, trackSession, type TrackedSession } from "./connections.js";
import { serveMetrics, type MetricsServer } from "./platform/metrics.js";
import { createHttpEndpoints, withCors, type Response } from "./http-endpoints.js";
import { createRoutes, createHealthState } from "./routes.js";
import { ServingStatus, type HealthState } from "./rpc/health.js";
import { createLoggingInterceptor } from "./rpc/logging.js";
import { createCallContext, createGrpcCallValues, createInterceptors } from "./rpc/pipeline.js";
import { captureServices, replayServices } from "./rpc/registry.js";
import { createGrpcEndpoint } from "./grpc-server.js";
import { createConnectHandler } from "./connect-handler.js";
import { createGrpcRefusalInterceptor } from "./rpc/grpc-refusals.js";
import { accountRefusedCalls, markPipelineEntered, pipelineEnteredKey } from "./rpc/refused-calls.js";

export interface AppServer {
  health: HealthState;
  /** Resolves with the bound port (useful with port 0); also starts the metrics listener when configured. */
  listen(port: number, host?: string): Promise<number>;
  /** Where Prometheus metrics are served once listening; undefined when METRICS_PORT=off. */
  readonly metricsPort: number | undefined;
  /**
   * Graceful stop: report NOT_SERVING, stop accepting connections, end server
   * streams with UNAVAILABLE, answer new calls UNAVAILABLE, send each HTTP/2
   * connection its GOAWAY once it has no call open, give running calls up to
   * `graceMs` to finish, then answer what is left UNAVAILABLE and cut it off.
   */
  close(graceMs?: number): Promise<void>;
}

const MAX_MESSAGE_BYTES = 1024 * 1024;
/** After the grace period, how long the UNAVAILABLE answers get to reach their clients before every connection is cut. */
const CUT_FLUSH_MS = 1000;
/** Longest the listening socket stays open into a drain while new connections keep arriving (see close()). */
const LISTENER_DRAIN_MAX_MS = 1000;

/**
 * One port for every client: connections that open with the HTTP/2 preface go
 * to the h2c server (gRPC, and Connect/gRPC-Web over HTTP/2); the rest go to
 * an HTTP/1.1 server (browsers speaking Connect or gRPC-Web). Both run the same
 * Connect handler.
 *
 * Every connection must earn its file descriptor: one that has not sent a
 * complete request head within HEADERS_TIMEOUT of connecting is closed, idle
 * HTTP/1.1 keep-alive sockets close after KEEPALIVE_TIMEOUT, HTTP/2 sessions
 * without an open stream get a GOAWAY after HTTP2_IDLE_TIMEOUT, and one HTTP/2
 * connection may hold at most HTTP2_MAX_CONCURRENT_STREAMS streams.
 */
export function createServer(deps: Deps): AppServer {
  const limits = deps.config.connections;
  const health = createHealthState();
  const draining = new AbortController();
  const graceOver = new AbortController();
  // One listener per running call on each (streams watch `draining` too).
  setMaxListeners(0, draining.signal, graceOver.signal);
  const callContext = createCallContext(limits.trustProxyHops);
  const drain = createDrainInterceptor(
    { draining: draining.signal, graceOver: graceOver.signal },
    (service) => service === Health.typeName,
    createLoggingInterceptor(deps.log, deps.metrics),
    deps.log,
  );
  // One set of implementations and one pipeline, whichever stack carries the call.
  const services = captureServices(createRoutes(deps, health, draining.signal));
  const pipeline = [drain, ...createInterceptors({ ...deps, trustProxyHops: limits.trustProxyHops })];
  const httpEndpoints = createHttpEndpoints(health, deps.config.pageDir);
  const connect = createConnectHandler({
    routes: (router) => {
      replayServices(services, router);
      accountRefusedCalls(router, deps.log, deps.metrics);
    },
    interceptors: [markPipelineEntered, ...pipeline],
    contextValues: (req) => callContext(req).set(pipelineEnteredKey, { entered: false }),
    readMaxBytes: MAX_MESSAGE_BYTES,
    fallback: (req, res) => httpEndpoints(req, res as Response),
    log: deps.log,
  });
  const handler = withCors(deps.config, connect);

  const h2 = createHttp2Server({ settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams } }, handler);
  const sessions = new Map<Http2Session, TrackedSession>();
  // The head deadline of the socket being handed to h2 right now: "session" is
  // emitted synchronously inside h2.emit("connection").
  let handingOver: NodeJS.Timeout | undefined;
  const onSession = (s: Http2Session) => {
    const headDeadline = handingOver;
    s.once("stream", () => clearTimeout(headDeadline));
    const tracked = trackSession(s, limits.http2IdleTimeoutMs, limits.headersTimeoutMs);
    sessions.set(s, tracked);
    s.on("close", () => sessions.delete(s));
    if (draining.signal.aborted) tracked.drain(); // a socket that connected just before the drain
  };
  h2.on("session", onSession);
  const grpc = createGrpcEndpoint(services, {
    interceptors: pipeline,
    logged: createLoggingInterceptor(deps.log, deps.metrics),
    callValues: createGrpcCallValues(limits.trustProxyHops),
    maxConcurrentStreams: limits.http2MaxConcurrentStreams,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    runtimeRefusals: createGrpcRefusalInterceptor(deps.log, deps.metrics),
    onSession,
  });

  const h1 = createHttp1Server({
    headersTimeout: limits.headersTimeoutMs,
    // node's default (the whole request, body included), raised if need be: node refuses a headersTimeout above it.
    requestTimeout: Math.max(limits.headersTimeoutMs, 300_000),
    // Node waits one second more than it advertises in `Keep-Alive: timeout=`,
    // so a client reusing the socket right at the deadline does not race the close.
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often node looks for overdue heads: a head is cut at most this late.
    connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(limits.headersTimeoutMs / 5))),
  });
  // headersTimeout and requestTimeout are enforced by a timer node starts on
  // "listening" (setupConnectionsTracking), and only for connections arriving
  // after it. h1 never listens (connections are handed to it), so without this
  // a half-sent request head would hold its socket forever.
  h1.emit("listening");
  const h1Calls = trackHttp1Calls(h1, draining.signal);
  h1.on("request", handler);

  const sockets = new Set<Socket>();
  /** A new TCP connection: tracked for the final cut, and given its head deadline. */
  const accept = (socket: Socket): NodeJS.Timeout => {
    sockets.add(socket);
    // Until the first request head: covers silence, a TLS handshake or a
    // partial HTTP/2 preface that never completes and, on HTTP/2, a session
    // that never opens a stream. On HTTP/1.1, node's headersTimeout takes over
    // once the socket is handed over.
    const headDeadline = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    socket.on("close", () => {
      clearTimeout(headDeadline);
      sockets.delete(socket);
    });
    socket.on("error", () => socket.destroy());
    return headDeadline;
  };
  const handOver = (socket: Socket, isH2: boolean, headDeadline: NodeJS.Timeout | undefined) => {
    if (!isH2) {
      clearTimeout(headDeadline);
      h1.emit("connection", socket);
      return;
    }
    handingOver = headDeadline;
    try {
      // Over TLS, ALPN "h2" is what browsers negotiate: connect-node serves
      // every protocol there. Plaintext HTTP/2 (h2c) is what gRPC clients
      // speak, and no browser does: grpc-js serves it.
      if ((socket as Partial<TLSSocket>).encrypted) h2.emit("connection", socket);
      else grpc.inject(socket);
    } finally {
      handingOver = undefined;
    }
  };
  const tcp = deps.config.tls
    ? createTlsListener(deps.config.tls, limits.headersTimeoutMs, accept, handOver)
    : createNetServer((socket) => {
        const headDeadline = accept(socket);
        routeConnection(socket, (isH2) => handOver(socket, isH2, headDeadline));
      });

  let metrics: MetricsServer | undefined;
  return {
    health,
    get metricsPort() {
      return metrics?.port;
    },
    async listen(port, host = deps.config.host) {
      const bound = await new Promise<number>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          resolve((tcp.address() as AddressInfo).port);
        });
      });
      if (deps.config.metrics) {
        try {
          metrics = await serveMetrics(deps.metrics.registry, deps.config.metrics.host, deps.config.metrics.port);
        } catch (err) {
          await new Promise((resolve) => tcp.close(resolve));
          throw err;
        }
      }
      return bound;
    },
    async close(graceMs = deps.config.shutdownGraceMs) {
      health.setAll(ServingStatus.NOT_SERVING);
      draining.abort(); // from here on, a call that arrives is answered UNAVAILABLE
      let cut: NodeJS.Timeout | undefined;
      const grace = setTimeout(() => {
        graceOver.abort();
        cut = setTimeout(() => {
          for (const s of sessions.keys()) s.destroy();
          for (const s of sockets) s.destroy();
        }, CUT_FLUSH_MS);
      }, graceMs);
      // Closing a listening socket resets the connections still in its
      // backlog, and a client that already sent its request reads that as
      // ECONNRESET (ABORTED in connect-node). So the port closes after an
      // event-loop turn that accepted nothing; what was accepted meanwhile is
      // served as a draining server serves. Resolves once every connection is gone.
      const closed = new Promise<void>((resolve) => {
        const until = Date.now() + LISTENER_DRAIN_MAX_MS;
        let accepted = true;
        const onConnection = () => (accepted = true);
        tcp.on("connection", onConnection);
        const closeWhenQuiet = () => {
          if (accepted && Date.now() < until) {
            accepted = false;
            setImmediate(closeWhenQuiet);
            return;
          }
          tcp.off("connection", onConnection);
          tcp.close(() => resolve());
        };
        closeWhenQuiet();
      });
      // What the sockets have received by now is read first (the event loop
      // finishes its poll for I/O before it runs immediates), so a session whose
      // next calls are already here is not taken for idle.
      await new Promise((resolve) => setImmediate(resolve));
      for (const tracked of sessions.values()) tracked.drain();
      h1Calls.closeIdle();
      await closed;
      clearTimeout(grace);
      clearTimeout(cut);
      h1.close(); // stops its connection-checking timer; its sockets are gone by now
      grpc.close();
      await metrics?.close(); // last: a scrape during the drain still sees it
    },
  };
}

/**
 * TLS on the public port: ALPN picks the protocol (browsers only speak HTTP/2
 * over TLS), so an accepted connection goes to the h2 server when it agreed
 * on "h2" and to the HTTP/1.1 server otherwise; no preface sniffing. The head
 * deadline starts at the TCP accept, so it also bounds the handshake.
 */
function createTlsListener(
  tls: TlsConfig,
  headersTimeoutMs: number,
  accept: (socket: Socket) => NodeJS.Timeout,
  handOver: (socket: Socket, isH2: boolean, headDeadline: NodeJS.Timeout | undefined) => void,
): NetServer {
  const listener = createTlsServer({ cert: tls.cert, key: tls.key, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: headersTimeoutMs });
  // node hands "secureConnection" the TLS socket, not the TCP one it wraps;
  // both carry the same peer address, which is unique among open connections.
  const deadlines = new Map<string, NodeJS.Timeout>();
  const peer = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  listener.on("connection", (raw: Socket) => {
    const key = peer(raw);
    deadlines.set(key, accept(raw));
    raw.once("close", () => deadlines.delete(key));
  });
  listener.on("secureConnection", (socket: TLSSocket) => {
    const key = peer(socket);
    const headDeadline = deadlines.get(key);
    deadlines.delete(key);
    socket.on("error", () => socket.destroy());
    handOver(socket, socket.alpnProtocol === "h2", headDeadline);
  });
  // A failed handshake: node has already destroyed the socket.
  listener.on("tlsClientError", () => {});
  return listener;
}
