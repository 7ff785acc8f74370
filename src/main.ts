import { constants } from "node:os";
import { inWorker, reportMetricsToPrimary, startPrimary, workerLog, type StopSignal } from "./cluster.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createDeps } from "./deps.js";
import { createLogger, type Logger } from "./platform/logger.js";
import { createServer } from "./server.js";

async function main(): Promise<void> {
  // Until the server is up there is nothing to drain: a stop signal ends the
  // process at once, as it would without a handler. Handled here all the same,
  // because as PID 1 in a container a signal without a handler is ignored.
  let stop = (signal: StopSignal): void => process.exit(128 + constants.signals[signal]);
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && !inWorker) {
    const primary = startPrimary(config, log);
    stop = (signal) => primary.drain(signal);
    return;
  }
  stop = await serve(config, inWorker ? workerLog(log) : log);
}

/** Today's one server: this process, or one worker of a cluster. Returns what a stop signal does. */
async function serve(config: Config, log: Logger): Promise<(signal: StopSignal) => void> {
  // In a worker, METRICS_PORT is the primary's (see cluster.ts).
  const deps = await createDeps(inWorker ? { ...config, metrics: undefined } : config, log);
  if (inWorker && config.metrics) reportMetricsToPrimary(deps.metrics.registry);
  const server = createServer(deps);
  const port = await server.listen(config.port);
  log.info(
    { port, host: config.host, database: deps.db.engine, queueAndLocks: deps.redis.length ? `redis x${deps.redis.length}` : "in-process" },
    "serving gRPC, gRPC-Web and Connect",
  );
  if (!inWorker) {
    if (config.metrics) log.info({ host: config.metrics.host, port: server.metricsPort }, "serving Prometheus metrics at /metrics");
    else log.info("Prometheus metrics are off (METRICS_PORT=off)");
  }

  // One drain, whatever arrives during it: a Ctrl-C under `npm start` reaches
  // the server twice (from the terminal's process group and forwarded by npm).
  let stopping = false;
  return (signal) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, "draining");
    (async () => {
      await server.close(); // the public port first, the metrics listener last
      await deps.close();
      log.info("stopped");
      // Workers share stdout with the primary, which may leave it non-blocking: pino then buffers.
      log.flush(() => process.exit(0));
    })().catch((err) => {
      log.error({ err }, "drain failed");
      process.exit(1);
    });
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
