import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../platform/logger.js";
import type { Metrics } from "../platform/metrics.js";
import { codeName } from "./codes.js";
import { requestIdKey } from "./context.js";

/**
 * One JSON log line and one metric sample per call, written when the call ends
 * (for a server stream: when the stream closes). Never logs payloads or tokens.
 */
export function createLoggingInterceptor(log: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    const requestId = req.contextValues.get(requestIdKey);
    const started = performance.now();
    let finished = false;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      const seconds = (performance.now() - started) / 1000;
      const code = err === undefined ? "OK" : codeName(ConnectError.from(err).code);
      metrics.rpcCalls.inc({ procedure, code });
      metrics.rpcDuration.observe({ procedure, code }, seconds);
      const line = { procedure, code, durationMs: Math.round(seconds * 100_000) / 100, requestId };
      if (err === undefined) log.info(line, "rpc");
      else log.info({ ...line, error: ConnectError.from(err).rawMessage }, "rpc");
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        finish();
        return res;
      }
      return { ...res, message: observeStream(res.message, req.signal, finish) };
    } catch (err) {
      // Errors carry the request id too: that is when a client needs it most.
      const failure = ConnectError.from(err);
      failure.metadata.set("x-request-id", requestId);
      finish(failure);
      throw failure;
    }
  };
}

async function* observeStream<T>(source: AsyncIterable<T>, signal: AbortSignal, finish: (err?: unknown) => void): AsyncIterable<T> {
  try {
    yield* source;
    // A handler may end its stream quietly when its call's signal aborts (the
    // client closed the stream, or its deadline passed): that is no success.
    finish(signal.aborted ? ConnectError.from(signal.reason, Code.Canceled) : undefined);
  } catch (err) {
    finish(err);
    throw err;
  } finally {
    // Closed early without an error: the client went away.
    finish(new ConnectError("stream closed by the client", Code.Canceled));
  }
}
