import { AsyncLocalStorage } from "node:async_hooks";
import type { EventSubscriber, TransactionEventArgs } from "@mikro-orm/core";

/**
 * The deadline of the call being served (epoch ms), for the database work it
 * starts: a transaction begun with less time left than DB_STATEMENT_TIMEOUT
 * gets `SET LOCAL statement_timeout` (and lock_timeout) to what is left, so a
 * client that gave up is not still holding a row lock on our side.
 */
const callDeadline = new AsyncLocalStorage<number>();

/** Runs `fn` with the call's deadline (undefined: none, `fn` runs as is). */
export function withCallDeadline<T>(deadlineAt: number | undefined, fn: () => T): T {
  return deadlineAt === undefined ? fn() : callDeadline.run(deadlineAt, fn);
}

/** Milliseconds the current call has left, if it has a deadline. */
export function callTimeLeftMs(now = Date.now()): number | undefined {
  const at = callDeadline.getStore();
  return at === undefined ? undefined : Math.max(1, at - now);
}

/**
 * Lowers the statement and lock timeouts of a transaction to the time its
 * call has left. `statementTimeoutMs` is the connection's own setting (0:
 * none): only a shorter remaining time changes anything.
 */
export function createDeadlineSubscriber(statementTimeoutMs: number): EventSubscriber {
  return {
    async afterTransactionStart({ em, transaction }: TransactionEventArgs) {
      const left = callTimeLeftMs();
      if (left === undefined || (statementTimeoutMs > 0 && left >= statementTimeoutMs)) return;
      const ms = Math.ceil(left);
      await em.getConnection().execute(`set local statement_timeout = ${ms}; set local lock_timeout = ${ms}`, [], "run", transaction);
    },
  };
}
