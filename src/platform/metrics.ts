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
