/**
 * What integration tests use: a fresh database per suite on the shared
 * PostgreSQL, the shared Redis, and the real server on a free port.
 */
import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { loadConfig, type Config, type Env } from "../../src/config";
import { createDeps, type Deps, type DepsOverrides } from "../../src/deps";
import { createLogger } from "../../src/platform/logger";
import { createServer, type AppServer } from "../../src/server";

import { createDatabase } from "./services";

export { freePort, startRedis, startPostgres } from "./services";
export type { PostgresServer, RedisServer } from "./services";

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through jest (the global setup starts the services)`);
  return v;
}

export const testRedisUrl = (): string => required("TEST_REDIS_URL");

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, empty database on the shared server. The server applies migrations when it opens it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = required("TEST_PG_ADMIN_URL");
  const name = `t_${randomBytes(6).toString("hex")}`;
  const url = await createDatabase(admin, name);
  return {
    url,
    name,
    async drop() {
      const c = new Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * A configuration for tests: quiet, loopback, free port, no demo catalog unless
 * asked (SEED_DEMO_CATALOG=true). Authentication, call budgets and the metrics
 * port are off unless a suite turns them on: the suites that test those do.
 */
export function testConfig(env: Env = {}): Config {
  return loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "silent",
    SEED_DEMO_CATALOG: "false",
    SHUTDOWN_GRACE: "2s",
    AUTH_MODE: "none",
    RATE_LIMITS: "off",
    METRICS_PORT: "off",
    ...env,
  });
}

export interface TestServer {
  port: number;
  /** http://127.0.0.1:port */
  baseUrl: string;
  deps: Deps;
  server: AppServer;
  stop(): Promise<void>;
}

/** The real server, in this process, on a free port. */
export async function startTestServer(env: Env = {}, overrides: DepsOverrides = {}): Promise<TestServer> {
  if (!env.DATABASE_URL) {
    // PGlite loads its WebAssembly with a dynamic import, which Jest's VM refuses
    // (the worker dies). The embedded default is tested in a child process instead.
    throw new Error("startTestServer needs DATABASE_URL (createTestDatabase()); see test/e2e/process.test.ts for the embedded default");
  }
  const config = testConfig(env);
  const deps = await createDeps(config, createLogger(config.logLevel), overrides);
  const server = createServer(deps);
  const port = await server.listen(0, "127.0.0.1");
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    deps,
    server,
    async stop() {
      await server.close(500);
      await deps.close();
    },
  };
}
