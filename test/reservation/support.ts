/** Shared by the reservation and concert suites: a migrated, seeded database and small race helpers. */
import { ConnectError, type Code, type Interceptor } from "@connectrpc/connect";
import type { Config } from "../../src/config";
import { seedDemoCatalog } from "../../src/modules/concert/demo-catalog";
import { entities } from "../../src/entities";
import { openDatabase, type Database } from "../../src/platform/db/database";
import { errorReason } from "../../src/platform/errors";
import { createLocalLocks, type Locks } from "../../src/platform/locks";
import { createCatalogCache } from "../../src/modules/concert/catalog-cache";
import type { ConcertRouteDeps } from "../../src/modules/concert/concert.routes";
import type { PaymentRouteDeps } from "../../src/modules/payment/payment.routes";
import type { ReservationRouteDeps } from "../../src/modules/reservation/reservation.routes";
import { createReservationMetrics } from "../../src/modules/reservation/reservation.metrics";
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import { Queue } from "../../src/modules/queue/queue.service";
import type { Clock } from "../../src/platform/clock";
import { Registry } from "prom-client";
import { createLogger } from "../../src/platform/logger";
import { callerKey, principalKey } from "../../src/rpc/context";
import { createTestDatabase, testConfig, type TestDatabase } from "../harness";

export const CONCERT = "iu-golden-hour-2027";
export const DATE = "2027-03-06";
export const OTHER_DATE = "2027-03-07";

export const quietLog = createLogger("silent");

export interface SeededDatabase {
  database: Database;
  orm: Database["orm"];
  config: Config;
  db: TestDatabase;
  close(): Promise<void>;
}

/** A fresh database on the shared PostgreSQL, migrated and loaded with the demo catalog. */
export async function openSeededDatabase(env: Record<string, string> = {}): Promise<SeededDatabase> {
  const db = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: db.url, ...env });
  const database = await openDatabase(config.database, entities, quietLog);
  await seedDemoCatalog(database.orm.em.fork());
  return {
    database,
    orm: database.orm,
    config,
    db,
    async close() {
      await database.close();
      await db.drop();
    },
  };
}

/**
 * Locks whose keys are unique to one suite: suites run side by side on the
 * shared Redis and every test database numbers its seats from 1.
 */
export function namespaced(locks: Locks, prefix: string): Locks {
  return { kind: locks.kind, tryAcquire: (key, ttlMs) => locks.tryAcquire(`${prefix}:${key}`, ttlMs) };
}

export interface Tally<T> {
  won: T[];
  /** Refusals by ErrorInfo reason ("none" for errors without one). */
  refused: Record<string, number>;
  errors: unknown[];
}

/** Sorts settled calls into winners, clean refusals (errors with a reason) and anything else. */
export function tally<T>(results: PromiseSettledResult<T>[]): Tally<T> {
  const t: Tally<T> = { won: [], refused: {}, errors: [] };
  for (const r of results) {
    if (r.status === "fulfilled") t.won.push(r.value);
    else {
      const reason = errorReason(r.reason);
      if (reason) t.refused[reason] = (t.refused[reason] ?? 0) + 1;
      else t.errors.push(r.reason);
    }
  }
  return t;
}

/** Resolves once `n` parties wait on it, or after `timeoutMs` so a broken test fails instead of hanging. */
export function barrier(n: number, timeoutMs = 2000): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const timer = setTimeout(open, timeoutMs);
  return async () => {
    if (++arrived >= n) {
      clearTimeout(timer);
      open();
    }
    await opened;
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How a call that must fail failed: its code and ErrorInfo reason. Throws if it succeeded. */
export async function rejection(p: Promise<unknown>): Promise<{ code: Code; reason?: string }> {
  try {
    await p;
  } catch (err) {
    return { code: ConnectError.from(err).code, reason: errorReason(err) };
  }
  throw new Error("expected a rejection");
}

/**
 * Stands in for authentication and the queue gate in front of handlers run in
 * memory: the `x-test-user` header (see `asUser`) names the caller, verified.
 */
export const fakeGate: Interceptor = (next) => async (req) => {
  const userId = req.header.get("x-test-user");
  if (userId) {
    req.contextValues.set(principalKey, { kind: "user", userId, scopes: new Set<string>() });
    req.contextValues.set(callerKey, { userId, token: "test" });
  }
  return next(req);
};

/** Call options that make `fakeGate` see `userId` as the caller. */
export const asUser = (userId: string) => ({ headers: { "x-test-user": userId } });

/**
 * What the concert, reservation and payment handlers need, over the seeded
 * database and `clock`: in-process locks and an in-process queue (its
 * admission loop not started), as on the embedded default.
 */
export function routeDeps(s: SeededDatabase, clock: Clock): ConcertRouteDeps & ReservationRouteDeps & PaymentRouteDeps {
  const em = () => s.orm.em.fork();
  const queue = new Queue(createMemoryQueueStore(), clock, s.config.queue, quietLog);
  return {
    em,
    clock,
    locks: createLocalLocks(() => clock.now().getTime()),
    hold: s.config.hold,
    log: quietLog,
    expireQueueToken: (token) => queue.expireAfterPayment(token),
    metrics: createReservationMetrics(new Registry(), em, clock),
    // As CATALOG_CACHE_TTL=0: every read goes to the database, so invalidation has nothing to drop.
    catalog: createCatalogCache(clock, 0),
    seatsChanged: () => undefined,
  };
}
