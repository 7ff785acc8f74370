import type { DatabaseTimeouts } from "../../config.js";
import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { databaseFault } from "./faults.js";
import { createLogGate, OUTAGE_LOG_WINDOW_MS } from "./outage-log.js";

export interface PoolHooksOptions {
  log: Logger;
  /** Set on each new connection; absent or 0: the server's own setting. */
  timeouts?: DatabaseTimeouts;
  clock?: Clock;
  windowMs?: number;
}

/** The part of a node-postgres client the hooks touch. */
interface PgConnection {
  on(event: "error", listener: (err: Error) => void): unknown;
  query(sql: string): Promise<unknown>;
}

/** knex's `log` option: where knex writes what it would otherwise print with console.log. */
export interface KnexLog {
  warn(message: unknown): void;
  error(message: unknown): void;
  deprecate(message: unknown): void;
  debug(message: unknown): void;
}

const KNEX_CONNECTION_ERROR = "Connection Error: ";

/**
 * The pool's side of the database: how each connection starts, and where
 * what the driver notices goes.
 *
 * When the server goes away, every idle connection gets an 'error' (57P01
 * from a shutdown, or a reset), which knex keeps on the connection and
 * prints with console.log ("Connection Error: ...") when the pool next
 * checks it out. Both reach the JSON log instead, as one "database
 * connection lost" line per window (with the count held back since the
 * last): a restart of a pool of 50 is one line, not 100. knex's own listener
 * stays, so an 'error' never goes unhandled.
 */
export function createPoolHooks({ log, timeouts, clock = systemClock, windowMs = OUTAGE_LOG_WINDOW_MS }: PoolHooksOptions) {
  const gate = createLogGate(windowMs, clock);
  const connectionLost = (kind: string) => {
    const verdict = gate("connection lost");
    if (verdict.pass) log.warn({ dependency: "database", kind, suppressed: verdict.suppressed }, "database connection lost");
  };
  const setup = sessionSettings(timeouts);
  const text = (message: unknown) => (typeof message === "string" ? message : String(message));
  const knexLog: KnexLog = {
    warn(message) {
      const m = text(message);
      if (m.startsWith(KNEX_CONNECTION_ERROR)) connectionLost(m.slice(KNEX_CONNECTION_ERROR.length).replace(/^error: /, ""));
      else log.warn({ source: "knex" }, m);
    },
    error: (message) => log.error({ source: "knex" }, text(message)),
    deprecate: (message) => log.warn({ source: "knex" }, text(message)),
    // knex debugs queries with their bindings: never.
    debug: () => {},
  };
  return {
    knexLog,
    /** knex calls it once per new connection, before the pool hands it out. */
    afterCreate(connection: PgConnection, done: (err: Error | null, connection: PgConnection) => void): void {
      connection.on("error", (err) => connectionLost(databaseFault(err)?.kind ?? "connection error"));
      if (!setup) {
        done(null, connection);
        return;
      }
      connection.query(setup).then(
        () => done(null, connection),
        (err: Error) => done(err, connection),
      );
    },
  };
}

/**
 * The SET statements for `timeouts`, or undefined when there is nothing to
 * set. Session settings rather than startup parameters: a connection pooler
 * in front of PostgreSQL (PgBouncer) refuses startup parameters it does not know.
 */
export function sessionSettings(timeouts?: DatabaseTimeouts): string | undefined {
  if (!timeouts) return undefined;
  const settings: Array<[string, number]> = [
    ["statement_timeout", timeouts.statementMs],
    ["lock_timeout", timeouts.lockMs],
    ["idle_in_transaction_session_timeout", timeouts.idleInTransactionMs],
  ];
  const statements = settings.filter(([, ms]) => ms > 0).map(([name, ms]) => `set ${name} = ${Math.trunc(ms)}`);
  return statements.length ? statements.join("; ") : undefined;
}
