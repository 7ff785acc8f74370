import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import { DeadlockException, OptimisticLockError, UniqueConstraintViolationException } from "@mikro-orm/core";
import { databaseFault, type DatabaseFault } from "../platform/db/faults.js";
import { createDatabaseOutageLog, type OutageLogOptions } from "../platform/db/outage-log.js";
import { domainError } from "../platform/errors.js";
import type { Logger } from "../platform/logger.js";
import { Reason } from "../platform/reasons.js";
import { requestIdKey } from "./context.js";

/** Errors a caller may simply retry: a concurrent writer won this time. */
function conflict(err: unknown): ConnectError | undefined {
  if (err instanceof OptimisticLockError) return domainError(Code.Aborted, Reason.CONCURRENT_UPDATE, "a concurrent update won; retry the call");
  if (err instanceof DeadlockException)
    return domainError(Code.Aborted, Reason.TRANSACTION_CONFLICT, "the transaction conflicted with another; retry the call");
  if (err instanceof UniqueConstraintViolationException)
    return domainError(Code.Aborted, Reason.CONCURRENT_INSERT, "a concurrent request created the same record; retry the call");
  return undefined;
}

const UNAVAILABLE_MESSAGES: Record<DatabaseFault["reason"], string> = {
  [Reason.DATABASE_UNAVAILABLE]: "the database is unavailable; retry the call",
  [Reason.DATABASE_TIMEOUT]: "the database did not answer in time; retry the call",
  [Reason.LOCK_TIMEOUT]: "the record is busy; retry the call",
};

/** The ConnectError of an aborted call: DEADLINE_EXCEEDED when its deadline passed, CANCELED otherwise. */
const abortedCall = (signal: AbortSignal, err: unknown) => ConnectError.from(signal.reason ?? err, Code.Canceled);

/**
 * Turns every failure into a deliberate gRPC status. Expected failures pass
 * through as thrown; library conflicts become ABORTED; the database being
 * away, slow or locked becomes UNAVAILABLE (counted on `metrics.registry` as
 * dependency_unavailable_total and logged once per burst); anything else is
 * logged once with its stack and answered INTERNAL without internals.
 */
export function createErrorInterceptor(log: Logger, metrics?: { registry: Registry }, options?: OutageLogOptions): Interceptor {
  const outages = createDatabaseOutageLog(log, metrics?.registry, options);
  const translate = (err: unknown, procedure: string, requestId: string, signal: AbortSignal): ConnectError => {
    if (err instanceof ConnectError) return err;
    const fault = databaseFault(err);
    if (fault) {
      // Counted even when the caller is gone: the database was away all the same.
      outages.failed(fault, procedure, { procedure, requestId });
      // A statement cancelled while the call's own deadline ran out: that deadline is the caller's answer.
      if (signal.aborted) return abortedCall(signal, err);
      return domainError(Code.Unavailable, fault.reason, UNAVAILABLE_MESSAGES[fault.reason]);
    }
    // The client left or the server is draining: whatever broke did so because of that.
    if (signal.aborted) return abortedCall(signal, err);
    const mapped = conflict(err);
    if (mapped) {
      log.warn({ procedure, requestId, err }, "retryable failure");
      return mapped;
    }
    log.error({ procedure, requestId, err }, "unexpected failure");
    return new ConnectError(`internal error (request id ${requestId})`, Code.Internal);
  };
  return (next) => async (req) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    const requestId = req.contextValues.get(requestIdKey);
    try {
      const res = await next(req);
      if (!res.stream) {
        outages.succeeded(procedure);
        return res;
      }
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* source;
          } catch (err) {
            throw translate(err, procedure, requestId, req.signal);
          }
          outages.succeeded(procedure);
        })(),
      };
    } catch (err) {
      throw translate(err, procedure, requestId, req.signal);
    }
  };
}
