import { DefaultLogger, MikroORM, type LogContext, type LoggerNamespace, type Options } from "@mikro-orm/postgresql";
import { Migrator } from "@mikro-orm/migrations";
import type { Config, DatabaseTimeouts } from "../../config.js";
import type { Logger } from "../logger.js";
import { migrationsList } from "./migrations/index.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./embedded-postgres.js";
import { createDeadlineSubscriber } from "./deadline.js";
import { createPoolHooks, type PoolHooksOptions } from "./pool-hooks.js";

export type { MikroORM };

/** The entities the ORM maps: each module lists its own, the composition root collects them. */
export type EntityList = NonNullable<Options["entities"]>;

export interface Database {
  orm: MikroORM;
  /** "postgresql" for a real server, "pglite" for the embedded default. */
  engine: "postgresql" | "pglite";
  close(): Promise<void>;
}

/**
 * MikroORM's logger with query logging switched off for good. Logged queries
 * would carry amounts, balances and idempotency keys (with `query-params`,
 * or wherever a value is inlined), and MikroORM lets MIKRO_ORM_DEBUG or a
 * per-query `logging` option turn them on behind `debug: false`.
 */
class NoQueryLogger extends DefaultLogger {
  override isEnabled(namespace: LoggerNamespace, context?: LogContext): boolean {
    return namespace !== "query" && namespace !== "query-params" && super.isEnabled(namespace, context);
  }
}

/**
 * ORM options shared by the server, the CLI commands and the tests. With
 * `pool`: what the driver reports goes to `pool.log` (not to stdout past the
 * JSON log), and every new connection gets `pool.timeouts`.
 */
export function ormOptions(entities: EntityList, connection: Partial<Options>, poolMax: number, pool?: PoolHooksOptions): Options {
  const hooks = pool && createPoolHooks(pool);
  return {
    ...connection,
    entities,
    extensions: [Migrator],
    pool: { min: 0, max: poolMax, ...(hooks && { afterCreate: hooks.afterCreate }) },
    ...(hooks && { driverOptions: { log: hooks.knexLog } }),
    // With timeouts (PostgreSQL, not PGlite): a transaction gets no more time than its call has left.
    ...(pool?.timeouts && { subscribers: [createDeadlineSubscriber(pool.timeouts.statementMs)] }),
    migrations: { migrationsList, transactional: true, allOrNothing: true, snapshot: false, silent: true },
    // Every request works on its own fork: a stray global use is a bug.
    allowGlobalContext: false,
    forceUtcTimezone: true,
    ensureDatabase: false,
    debug: false,
    loggerFactory: (options) => new NoQueryLogger(options),
  };
}

export interface OpenOptions {
  /** Apply pending migrations before returning (default). The migrate command turns it off to report them itself. */
  migrate?: boolean;
}

/** What openDatabase needs; without `timeouts` the server's own settings apply. */
export type DatabaseSettings = Omit<Config["database"], "timeouts"> & { timeouts?: DatabaseTimeouts };

/**
 * Connects to `database.url`, or starts the embedded PGlite when none is set,
 * and applies pending migrations. The schema is never synchronised from the
 * entities at run time: migrations are the only writer of DDL.
 */
export async function openDatabase(database: DatabaseSettings, entities: EntityList, log: Logger, { migrate = true }: OpenOptions = {}): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let options: Options;
  if (database.url) {
    options = ormOptions(entities, { clientUrl: database.url }, database.poolMax, { log, timeouts: database.timeouts });
  } else {
    embedded = await startEmbeddedPostgres(database.pgliteDataDir);
    log.info({ dataDir: database.pgliteDataDir }, "started embedded PostgreSQL (PGlite)");
    // No timeouts: PGlite runs no timers (they would never fire), and with
    // idle_in_transaction_session_timeout set its one session stops answering
    // after the first transaction that waits.
    options = ormOptions(entities, { host: embedded.socketDir, port: embedded.port, dbName: "postgres", user: "postgres" }, 1, { log });
  }
  let orm: MikroORM;
  try {
    orm = await MikroORM.init(options);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
  try {
    if (migrate) {
      // Under the same timeouts as every call: a migration that may run longer says so itself (`set local statement_timeout = ...`).
      const applied = await orm.getMigrator().up();
      if (applied.length) log.info({ migrations: applied.map((m) => m.name) }, "applied migrations");
    }
  } catch (err) {
    await orm.close(true);
    await embedded?.stop();
    throw err;
  }
  return {
    orm,
    engine: embedded ? "pglite" : "postgresql",
    async close() {
      await orm.close(true);
      await embedded?.stop();
    },
  };
}
