import { ConfigError, loadConfig } from "./config.js";
import { createDeps } from "./deps.js";
import { createLogger } from "./platform/logger.js";
import { createServer } from "./server.js";

async function main(): Promise<void> {
  let config;
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
  const deps = await createDeps(config, log);
  const server = createServer(deps);
  const port = await server.listen(config.port);
  log.info(
    { port, host: config.host, database: deps.db.engine, queueAndLocks: deps.redis.length ? `redis x${deps.redis.length}` : "in-process" },
    "serving gRPC, gRPC-Web and Connect",
  );
  if (config.metrics) log.info({ host: config.metrics.host, port: server.metricsPort }, "serving Prometheus metrics at /metrics");
  else log.info("Prometheus metrics are off (METRICS_PORT=off)");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining");
    await server.close(); // the public port first, the metrics listener last
    await deps.close();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
