/**
 * A boxoffice server for other projects' tests: the real service in this
 * process, on an in-memory PostgreSQL (PGlite), with the demo catalog, on a
 * free port, with time the test moves by hand.
 *
 *   import { startTestServer } from "boxoffice/testing";
 *   const bo = await startTestServer();
 *   // ... call bo.baseUrl over gRPC, gRPC-Web or Connect ...
 *   await bo.advance(5 * 60_000);   // holds and queue tokens age 5 minutes
 *   await bo.stop();
 *
 * PGlite runs in a worker thread and the service reaches it over a loopback
 * socket: PGlite loads its WebAssembly with dynamic imports, which Jest's
 * module sandbox refuses, and a worker thread is outside that sandbox.
 */
import { createServer as createNetServer } from "node:net";
import { Worker } from "node:worker_threads";
import { loadConfig, type Env } from "./config.js";
import { createDeps, type Deps } from "./deps.js";
import type { Clock } from "./platform/clock.js";
import { createLogger } from "./platform/logger.js";
import { expireStaleHolds } from "./modules/reservation/seat-hold.service.js";
import { createServer } from "./server.js";

export interface TestServerOptions {
  /** Configuration on top of the test defaults below (any variable of the README's Configuration table). */
  env?: Env;
  /** Where the server's clock starts (default: the real time now). It then runs on with real time. */
  startAt?: Date;
}

export interface BoxofficeTestServer {
  /** http://127.0.0.1:port, for any transport (gRPC needs HTTP/2, Connect and gRPC-Web take either). */
  baseUrl: string;
  port: number;
  /** The server's clock: real time plus every advance(). */
  clock: Clock;
  /**
   * Moves the server's time forward. Resolves once the queue has run an
   * admission round and lapsed holds are marked EXPIRED at the new time, so
   * the next call sees both.
   */
  advance(ms: number): Promise<void>;
  /** The wired service, for assertions a black-box call cannot make. */
  deps: Deps;
  stop(): Promise<void>;
}

/**
 * Defaults for tests: no authentication (user_id in requests is trusted), no
 * call budgets, no metrics port, and a queue that admits at once.
 */
const TEST_DEFAULTS: Env = {
  HOST: "127.0.0.1",
  PORT: "0",
  LOG_LEVEL: "silent",
  AUTH_MODE: "none",
  RATE_LIMITS: "off",
  METRICS_PORT: "off",
  SEED_DEMO_CATALOG: "true",
  SHUTDOWN_GRACE: "1s",
  QUEUE_TICK: "20ms",
  QUEUE_ADMIT_PER_SECOND: "100000",
  QUEUE_MAX_ACTIVE: "100000",
  QUEUE_STREAM_POSITION_INTERVAL: "0",
  HOLD_SWEEP_INTERVAL: "1s",
};

/** Offset from real time, so timers and time-based rates keep working between advances. */
class AdjustableClock implements Clock {
  constructor(private offsetMs: number) {}
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance(ms) takes a non-negative number of milliseconds, not ${ms}`);
    this.offsetMs += ms;
  }
}

export async function startTestServer(options: TestServerOptions = {}): Promise<BoxofficeTestServer> {
  const pg = await startPgliteWorker();
  try {
    const config = loadConfig({
      ...TEST_DEFAULTS,
      // PGlite serves one session: one connection, and no server-side timeouts (it runs no timers).
      DATABASE_URL: `postgresql://postgres@127.0.0.1:${pg.port}/postgres`,
      DB_POOL_MAX: "1",
      DB_STATEMENT_TIMEOUT: "0",
      DB_LOCK_TIMEOUT: "0",
      DB_IDLE_IN_TRANSACTION_TIMEOUT: "0",
      ...options.env,
    });
    const clock = new AdjustableClock(options.startAt ? options.startAt.getTime() - Date.now() : 0);
    const deps = await createDeps(config, createLogger(config.logLevel), { clock });
    const server = createServer(deps);
    let port: number;
    try {
      port = await server.listen(0, config.host);
    } catch (err) {
      await deps.close();
      throw err;
    }
    return {
      baseUrl: `http://127.0.0.1:${port}`,
      port,
      clock,
      deps,
      async advance(ms) {
        clock.advance(ms);
        await deps.queue.tick();
        await expireStaleHolds(deps.orm.em.fork(), clock);
      },
      async stop() {
        await server.close(500);
        await deps.close();
        await pg.stop();
      },
    };
  } catch (err) {
    await pg.stop();
    throw err;
  }
}

interface PgliteWorker {
  port: number;
  stop(): Promise<void>;
}

/** Plain CommonJS, evaluated in the worker: no TypeScript loader reaches it there. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { PGlite } = require(workerData.pglite);
const { PGLiteSocketServer } = require(workerData.socket);
(async () => {
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: workerData.port, maxConnections: 1 });
  await server.start();
  parentPort.once("message", async () => {
    await server.stop();
    await db.close();
    parentPort.postMessage("stopped");
  });
  parentPort.postMessage("ready");
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

async function startPgliteWorker(): Promise<PgliteWorker> {
  const port = await freePort();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { port, pglite: require.resolve("@electric-sql/pglite"), socket: require.resolve("@electric-sql/pglite-socket") },
  });
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
  const first = await next();
  if (first !== "ready") {
    await worker.terminate();
    throw new Error(`embedded PostgreSQL did not start: ${(first as { error?: string }).error ?? String(first)}`);
  }
  return {
    port,
    async stop() {
      const stopped = next();
      worker.postMessage("stop");
      await stopped.catch(() => undefined);
      await worker.terminate();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
