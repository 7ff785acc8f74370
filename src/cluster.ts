import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type PrometheusContentType, type Registry } from "prom-client";
import type { Config } from "./config.js";
import type { Logger } from "./platform/logger.js";
import { serveMetrics, type MetricsServer } from "./platform/metrics.js";

/**
 * WORKERS > 1: this process (the primary) serves no calls. It forks that many
 * workers, each running the ordinary server on the same port; the primary
 * accepts the connections and hands them out in turn (node:cluster's
 * round-robin). Every worker is an instance of its own (queue and locks are
 * on Redis, the database is PostgreSQL: config.ts refuses anything else), so
 * the cluster behaves as that many instances behind one port.
 */

export type StopSignal = "SIGTERM" | "SIGINT";

export const inWorker = cluster.isWorker;

/** Every line a worker logs names the worker and its pid. */
export function workerLog(log: Logger): Logger {
  return log.child({ worker: cluster.worker!.id, pid: process.pid });
}

/**
 * A worker does not bind METRICS_PORT (they cannot all hold it): it answers
 * the primary's requests for `registry` instead. prom-client's
 * AggregatorRegistry installs that responder in its constructor.
 */
export function reportMetricsToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry();
}

/** The primary's /metrics: every live worker's metrics, summed (counters, histograms) or as prom-client aggregates each default metric. */
class ClusterRegistry extends AggregatorRegistry<PrometheusContentType> {
  override metrics(): Promise<string> {
    return this.clusterMetrics();
  }
}

/** After SHUTDOWN_GRACE plus this, workers still running are killed and the primary exits 1. */
const DRAIN_OVERRUN_MS = 15_000;

export interface Primary {
  /** Forwards the signal to every worker; the process exits once all have: 0 if each drained cleanly, else 1. */
  drain(signal: StopSignal): void;
}

/**
 * Forks `config.workers` workers, one at a time: the first applies pending
 * migrations and loads the demo catalog before the next starts, so they never
 * race. A worker that dies after it served is logged and replaced; one that
 * fails before it serves (the database is unreachable, a port is taken) stops
 * the cluster with exit 1, as a single process that fails to start does.
 * Nothing is replaced once draining.
 */
export function startPrimary(config: Config, log: Logger): Primary {
  const workers = new Map<Worker, { serving: boolean }>();
  let draining = false;
  let failed = false;
  let metrics: MetricsServer | undefined;
  let port = config.port;

  const finish = async () => {
    await metrics?.close();
    log.info({ failed }, "stopped");
    // The workers share this stdout and may leave it non-blocking: pino then buffers what did not fit.
    log.flush(() => process.exit(failed ? 1 : 0));
  };

  const drain = (signal: StopSignal, why?: string) => {
    if (draining) return;
    draining = true;
    log.info({ signal, workers: workers.size, graceMs: config.shutdownGraceMs, ...(why ? { why } : {}) }, "draining");
    if (workers.size === 0) {
      void finish();
      return;
    }
    for (const w of workers.keys()) w.process.kill(signal);
    setTimeout(() => {
      failed = true;
      for (const w of workers.keys()) {
        log.error({ pid: w.process.pid }, "worker did not stop in time; killing it");
        w.process.kill("SIGKILL");
      }
    }, config.shutdownGraceMs + DRAIN_OVERRUN_MS).unref();
  };

  /** Resolves once the worker serves, or has exited. */
  const fork = (): Promise<void> =>
    new Promise((resolve) => {
      const w = cluster.fork();
      const entry = { serving: false };
      workers.set(w, entry);
      log.info({ worker: w.id, pid: w.process.pid }, "worker started");
      w.once("listening", (address) => {
        port = address.port;
        entry.serving = true;
        resolve();
      });
      w.once("exit", () => resolve());
    });

  cluster.on("exit", (w, code, signal) => {
    const state = workers.get(w);
    workers.delete(w);
    const clean = code === 0 && signal === null;
    if (draining) {
      const line = { worker: w.id, pid: w.process.pid, code, signal };
      if (clean) log.info(line, "worker stopped");
      else {
        failed = true;
        log.error(line, "worker stopped");
      }
      if (workers.size === 0) void finish();
      return;
    }
    if (!state?.serving) {
      failed = true;
      log.error({ worker: w.id, pid: w.process.pid, code, signal }, "worker failed to start; stopping the others");
      drain("SIGTERM", "a worker failed to start");
      return;
    }
    log.error({ worker: w.id, pid: w.process.pid, code, signal }, "worker died; starting another");
    void fork();
  });

  (async () => {
    if (config.metrics) {
      metrics = await serveMetrics(new ClusterRegistry(), config.metrics.host, config.metrics.port);
      log.info({ host: config.metrics.host, port: metrics.port, workers: config.workers }, "serving Prometheus metrics at /metrics, summed over the workers");
    } else log.info("Prometheus metrics are off (METRICS_PORT=off)");
    for (let i = 0; i < config.workers && !draining; i++) await fork();
    if (!draining) log.info({ port, host: config.host, workers: [...workers.keys()].map((w) => w.process.pid) }, "every worker serving");
  })().catch((err) => {
    log.error({ err }, "cluster failed to start");
    failed = true;
    drain("SIGTERM", "the primary failed to start");
  });

  return { drain: (signal) => drain(signal) };
}
