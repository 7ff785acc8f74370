import type { Config } from "./config.js";
import { systemClock, type Clock } from "./platform/clock.js";
import { entities } from "./entities.js";
import { openDatabase, type Database } from "./platform/db/database.js";
import { createLocalLocks, createRedlockLocks, type Locks } from "./platform/locks.js";
import type { Logger } from "./platform/logger.js";
import { createMetrics, type Metrics } from "./platform/metrics.js";
import { closeRedis, connectRedis, connectRedisSentinel, type Redis } from "./platform/redis.js";
import { createCatalogCache, type CatalogCache } from "./modules/concert/catalog-cache.js";
import { seedDemoCatalog } from "./modules/concert/demo-catalog.js";
import type { ConcertRouteDeps } from "./modules/concert/concert.routes.js";
import type { PaymentRouteDeps } from "./modules/payment/payment.routes.js";
import { createMemoryQueueStore } from "./modules/queue/memory-queue-store.js";
import { createQueueMetrics } from "./modules/queue/queue.metrics.js";
import { Queue } from "./modules/queue/queue.service.js";
import { createRedisQueueStore } from "./modules/queue/redis-queue-store.js";
import { startHoldSweeper } from "./modules/reservation/hold-sweeper.js";
import { createReservationMetrics } from "./modules/reservation/reservation.metrics.js";
import type { ReservationRouteDeps } from "./modules/reservation/reservation.routes.js";
import type { WalletRouteDeps } from "./modules/wallet/wallet.routes.js";
import { createAuthenticator, type Authenticator } from "./rpc/auth.js";
import { createRateLimits, type RateLimits } from "./rpc/rate-limit.js";

/** Each module's own deps: a handler gets its module's, never the whole bag. */
export interface ModuleDeps {
  concert: ConcertRouteDeps;
  reservation: ReservationRouteDeps;
  payment: PaymentRouteDeps;
  wallet: WalletRouteDeps;
}

/** What the server and its modules run on, wired by hand once at boot. */
export interface Deps {
  config: Config;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  db: Database;
  orm: Database["orm"];
  /** Empty on the embedded default. The first holds the queue and the shared call budgets (Sentinel's master when configured). */
  redis: Redis[];
  locks: Locks;
  queue: Queue;
  /** Who is calling: verifies bearer tokens (AUTH_MODE=jwt) or trusts requests (none). */
  auth: Authenticator;
  /** Per-user and per-address call budgets, shared through Redis when there is one. */
  limits: RateLimits;
  modules: ModuleDeps;
  /** The concert list and dates, up to CATALOG_CACHE_TTL old; writes that free or take a seat call `catalog.seatsChanged`. */
  catalog: CatalogCache;
  close(): Promise<void>;
}

export interface DepsOverrides {
  clock?: Clock;
  /** Run the admission loop (default true). Tests that drive rounds by hand turn it off. */
  startQueue?: boolean;
}

export async function createDeps(config: Config, log: Logger, overrides: DepsOverrides = {}): Promise<Deps> {
  const clock = overrides.clock ?? systemClock;
  // First: a key set that cannot be read stops the process before anything opens.
  const auth = await createAuthenticator(config.auth, log);
  const db = await openDatabase(config.database, entities, log);
  let redis: Redis[] = [];
  try {
    if (config.database.seedDemoCatalog ?? db.engine === "pglite") {
      const added = await seedDemoCatalog(db.orm.em.fork());
      if (added) log.info({ concerts: added }, "loaded the demo catalog");
    }
    const redisOptions = { commandTimeoutMs: config.redisCommandTimeoutMs };
    redis = config.redisUrls.length ? await connectRedis(config.redisUrls, log, redisOptions) : [];
    if (config.redisSentinel) redis = [await connectRedisSentinel(config.redisSentinel, log, redisOptions), ...redis];
  } catch (err) {
    await closeRedis(redis);
    await db.close();
    throw err;
  }
  // Redlock votes over REDIS_URLS; with Sentinel alone, on its master.
  const lockNodes = config.redisSentinel && config.redisUrls.length ? redis.slice(1) : redis;
  const locks = redis.length ? createRedlockLocks(lockNodes, log) : createLocalLocks(() => clock.now().getTime());
  const metrics = createMetrics();
  const limits = createRateLimits(config.rateLimits, redis[0], log, metrics.registry);
  // The line lives on the first node.
  const store = redis.length ? createRedisQueueStore(redis[0], config.queue.redisPrefix) : createMemoryQueueStore();
  const queue: Queue = new Queue(
    store,
    clock,
    config.queue,
    log,
    createQueueMetrics(metrics.registry, () => queue.openStreams),
  );
  if (overrides.startQueue ?? true) queue.start();
  const em = () => db.orm.em.fork();
  const catalog = createCatalogCache(clock, config.catalogCacheTtlMs);
  const modules: ModuleDeps = {
    concert: { em, clock, catalog },
    reservation: {
      em,
      clock,
      locks,
      hold: config.hold,
      metrics: createReservationMetrics(metrics.registry, em, clock),
      seatsChanged: (concertId) => catalog.seatsChanged(concertId),
    },
    payment: { em, clock, log, expireQueueToken: (token) => queue.expireAfterPayment(token) },
    wallet: { em, clock, limits: config.wallet },
  };
  const sweeper = startHoldSweeper(em, clock, config.hold.sweepIntervalMs, log, modules.reservation.metrics.swept);
  return {
    config,
    log,
    clock,
    metrics,
    db,
    orm: db.orm,
    redis,
    locks,
    queue,
    auth,
    limits,
    modules,
    catalog,
    async close() {
      await queue.stop();
      auth.close();
      await sweeper.stop();
      await closeRedis(redis);
      await db.close();
    },
  };
}
