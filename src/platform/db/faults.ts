import { ConnectionException, LockWaitTimeoutException } from "@mikro-orm/core";
import { Reason } from "../reasons.js";

/**
 * Why the database could not serve a call, as the caller should hear it:
 * DATABASE_UNAVAILABLE (the server or the connection to it is gone, or there
 * is no connection to be had), DATABASE_TIMEOUT (a statement ran past
 * statement_timeout), LOCK_TIMEOUT (a row stayed locked past lock_timeout).
 * `kind` names the condition for the log: a SQLSTATE and its name, a socket
 * error code or the driver's words, never the statement or its values.
 */
export interface DatabaseFault {
  reason: typeof Reason.DATABASE_UNAVAILABLE | typeof Reason.DATABASE_TIMEOUT | typeof Reason.LOCK_TIMEOUT;
  kind: string;
}

/** SQLSTATEs that mean "not now" rather than "never": the same call may well succeed later. */
const SQLSTATES: Record<string, DatabaseFault> = {
  "57014": { reason: Reason.DATABASE_TIMEOUT, kind: "57014 query_canceled" },
  "55P03": { reason: Reason.LOCK_TIMEOUT, kind: "55P03 lock_not_available" },
  "25P03": { reason: Reason.DATABASE_UNAVAILABLE, kind: "25P03 idle_in_transaction_session_timeout" },
  "57P01": { reason: Reason.DATABASE_UNAVAILABLE, kind: "57P01 admin_shutdown" },
  "57P02": { reason: Reason.DATABASE_UNAVAILABLE, kind: "57P02 crash_shutdown" },
  "57P03": { reason: Reason.DATABASE_UNAVAILABLE, kind: "57P03 cannot_connect_now" },
  "57P05": { reason: Reason.DATABASE_UNAVAILABLE, kind: "57P05 idle_session_timeout" },
  "53300": { reason: Reason.DATABASE_UNAVAILABLE, kind: "53300 too_many_connections" },
};

/** Socket failures on the way to the server (Node's `code` on the driver's error). */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * What node-postgres and knex say, without a code, when a connection is lost
 * under them. MikroORM puts the statement before the driver's words
 * ("<sql> - <message>"), so they are matched at the end of the message only:
 * a value inlined in the statement cannot end it.
 *
 * "Transaction query already complete": knex swallows a failed BEGIN (its
 * transaction() resolves anyway, marked complete) and the next statement of
 * the transaction fails with this instead. BEGIN fails only when the
 * connection does, and every transaction here is scoped by em.transactional,
 * so no statement can run after its commit.
 */
const LOST_CONNECTION = [
  [/(?:^| - )Connection terminated unexpectedly$/, "connection terminated"],
  [/(?:^| - )Connection terminated$/, "connection terminated"],
  [/(?:^| - )Connection terminated due to connection timeout$/, "connect timeout"],
  [/(?:^| - )Client has encountered a connection error and is not queryable$/, "connection lost"],
  [/(?:^| - )Client was closed and is not queryable$/, "connection closed"],
  [/(?:^| - )Knex: Timeout acquiring a connection\. The pool is probably full\. Are you missing a \.transacting\(trx\) call\?$/, "pool acquire timeout"],
  [/(?:^| - )Transaction query already complete, run with DEBUG=knex:tx for more info$/, "transaction lost its connection"],
] as const;

const MAX_DEPTH = 5;

/**
 * The database fault behind `err`, or undefined when it is something else (a
 * constraint, a bug). Looks at the error, what it wraps (`cause`, MikroORM's
 * `previous`) and, for a connection attempt to several addresses, each of the
 * attempts (AggregateError).
 */
export function databaseFault(err: unknown, depth = 0): DatabaseFault | undefined {
  // Duck-typed: socket errors are Node's own, of the main realm, not of a VM context (Jest's) this module may run in.
  if (typeof err !== "object" || err === null || depth > MAX_DEPTH) return undefined;
  const own = ownFault(err as ErrorFields);
  if (own) return own;
  const wrapped = err as { cause?: unknown; previous?: unknown; errors?: unknown };
  for (const inner of [wrapped.cause, wrapped.previous, ...(Array.isArray(wrapped.errors) ? wrapped.errors : [])]) {
    const found = databaseFault(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}

interface ErrorFields {
  code?: unknown;
  syscall?: unknown;
  name?: unknown;
  message?: unknown;
}

function ownFault(err: ErrorFields): DatabaseFault | undefined {
  const { code, syscall, name, message } = err;
  if (typeof code === "string") {
    const known = SQLSTATES[code];
    if (known) return known;
    // Class 08: connection exception (08000, 08003, 08006, 08001, 08004, 08P01, ...).
    if (/^08[0-9A-Z]{3}$/.test(code)) return { reason: Reason.DATABASE_UNAVAILABLE, kind: `${code} connection_exception` };
    if (SOCKET_CODES.has(code)) return { reason: Reason.DATABASE_UNAVAILABLE, kind: code };
    // A Unix socket path with no server behind it.
    if (code === "ENOENT" && syscall === "connect") return { reason: Reason.DATABASE_UNAVAILABLE, kind: code };
  }
  if (name === "KnexTimeoutError") return { reason: Reason.DATABASE_UNAVAILABLE, kind: "pool acquire timeout" };
  if (err instanceof LockWaitTimeoutException) return { reason: Reason.LOCK_TIMEOUT, kind: "lock wait timeout" };
  if (err instanceof ConnectionException) return { reason: Reason.DATABASE_UNAVAILABLE, kind: "connection exception" };
  if (typeof message === "string")
    for (const [pattern, kind] of LOST_CONNECTION) if (pattern.test(message)) return { reason: Reason.DATABASE_UNAVAILABLE, kind };
  return undefined;
}
