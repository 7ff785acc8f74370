import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One registry per server, so tests can run several servers in one process. */
export interface Metrics {
  registry: Registry;
  rpcCalls: Counter<"procedure" | "code">;
  rpcDuration: Histogram<"procedure" | "code">;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    rpcCalls: new Counter({
      name: "rpc_calls_total",
      help: "RPCs answered, by procedure and gRPC status code",
      labelNames: ["procedure", "code"],
      registers: [registry],
    }),
    rpcDuration: new Histogram({
      name: "rpc_duration_seconds",
      help: "RPC latency (for streams: how long the stream stayed open)",
      labelNames: ["procedure", "code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}

export interface MetricsServer {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Prometheus metrics on their own listener, meant for loopback or a private
 * interface: what they reveal (call volumes, memory, event-loop lag) is for
 * operators, not for the public port.
 */
export function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "/").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
