import { startPostgres, startRedis, type PostgresServer, type RedisServer } from "./services";

declare global {
  // eslint-disable-next-line no-var
  var __testServices: { pg: PostgresServer; redis: RedisServer } | undefined;
}

/** Starts one PostgreSQL and one Redis for the whole run; workers read their addresses from the environment. */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  globalThis.__testServices = { pg, redis };
  process.env.TEST_PG_ADMIN_URL = pg.adminUrl;
  process.env.TEST_REDIS_URL = redis.url;
  // If Jest dies before teardown, do not leave servers behind.
  process.once("exit", () => {
    try {
      pg.stop();
    } catch {
      /* already stopped */
    }
  });
  process.stderr.write(`\ntest services: PostgreSQL :${pg.port}, Redis :${redis.port} (${Date.now() - started} ms)\n`);
}
