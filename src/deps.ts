import type { Config } from "./config.js";
import { systemClock, type Clock } from "./platform/clock.js";
import { openDatabase, type Database } from "./platform/db/database.js";
import { createLocalLocks, createRedlockLocks, type Locks } from "./platform/locks.js";
import type { Logger } from "./platform/logger.js";
import { createMetrics, type Metrics } from "./platform/metrics.js";
import { closeRedis, connectRedis, type Redis } from "./platform/redis.js";
import { seedDemoCatalog } from "./modules/concert/demo-catalog.js";

/** Everything a handler may use, wired by hand once at boot. */
export interface Deps {
  config: Config;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  db: Database;
  orm: Database["orm"];
  /** Empty on the embedded default. */
  redis: Redis[];
  locks: Locks;
  close(): Promise<void>;
}

export interface DepsOverrides {
  clock?: Clock;
}

export async function createDeps(config: Config, log: Logger, overrides: DepsOverrides = {}): Promise<Deps> {
  const clock = overrides.clock ?? systemClock;
  const db = await openDatabase(config.database, log);
  let redis: Redis[] = [];
  try {
    if (config.database.seedDemoCatalog ?? db.engine === "pglite") {
      const added = await seedDemoCatalog(db.orm.em.fork());
      if (added) log.info({ concerts: added }, "loaded the demo catalog");
    }
    redis = config.redisUrls.length ? await connectRedis(config.redisUrls, log) : [];
  } catch (err) {
    await db.close();
    throw err;
  }
  const locks = redis.length ? createRedlockLocks(redis, log) : createLocalLocks(() => clock.now().getTime());
  return {
    config,
    log,
    clock,
    metrics: createMetrics(),
    db,
    orm: db.orm,
    redis,
    locks,
    async close() {
      await closeRedis(redis);
      await db.close();
    },
  };
}
