import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  ConnectionException,
  DeadlockException,
  LockWaitTimeoutException,
  OptimisticLockError,
  UniqueConstraintViolationException,
} from "@mikro-orm/core";
import { domainError } from "../platform/errors.js";
import type { Logger } from "../platform/logger.js";
import { requestIdKey } from "./context.js";

/** Errors a caller may simply retry: a concurrent writer won this time. */
function retryable(err: unknown): ConnectError | undefined {
  if (err instanceof OptimisticLockError)
    return domainError(Code.Aborted, "CONCURRENT_UPDATE", "a concurrent update won; retry the call");
  if (err instanceof DeadlockException)
    return domainError(Code.Aborted, "TRANSACTION_CONFLICT", "the transaction conflicted with another; retry the call");
  if (err instanceof UniqueConstraintViolationException)
    return domainError(Code.Aborted, "CONCURRENT_INSERT", "a concurrent request created the same record; retry the call");
  if (err instanceof LockWaitTimeoutException)
    return domainError(Code.Unavailable, "LOCK_TIMEOUT", "the record is busy; retry the call");
  if (err instanceof ConnectionException || isPoolTimeout(err))
    return domainError(Code.Unavailable, "DATABASE_UNAVAILABLE", "the database is unavailable; retry the call");
  return undefined;
}

function isPoolTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "KnexTimeoutError";
}

/**
 * Turns every failure into a deliberate gRPC status. Expected failures pass
 * through as thrown; library conflicts become retryable codes; anything else is
 * logged once with its stack and answered INTERNAL without internals.
 */
export function createErrorInterceptor(log: Logger): Interceptor {
  const translate = (err: unknown, procedure: string, requestId: string, signal: AbortSignal): ConnectError => {
    if (err instanceof ConnectError) return err;
    // The client left or the server is draining: whatever broke did so because of that.
    if (signal.aborted) return ConnectError.from(signal.reason ?? err, Code.Canceled);
    const mapped = retryable(err);
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
      if (!res.stream) return res;
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* source;
          } catch (err) {
            throw translate(err, procedure, requestId, req.signal);
          }
        })(),
      };
    } catch (err) {
      throw translate(err, procedure, requestId, req.signal);
    }
  };
}
