import { ConnectError, createContextKey, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, endStreamFlag, endStreamFromJson, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import type { Logger } from "../platform/logger.js";
import type { Metrics } from "../platform/metrics.js";
import { codeName } from "./codes.js";
import { requestIdKey } from "./context.js";

/** Set when a call enters the interceptor pipeline; a call without it was answered by the Connect runtime alone. */
export const pipelineEnteredKey = createContextKey<{ entered: boolean } | undefined>(undefined, { description: "call entered the pipeline" });

export const markPipelineEntered: Interceptor = (next) => (req) => {
  const mark = req.contextValues.get(pipelineEnteredKey);
  if (mark) mark.entered = true;
  return next(req);
};

/**
 * Calls the Connect runtime refuses before any interceptor runs get the one
 * log line and the metric sample every other call gets from the pipeline.
 *
 * These are the client's fault: a unary request whose bytes are not the
 * request message, broken gRPC framing, an oversized message, a bad timeout
 * header. connect-es (2.1) parses a unary request before the interceptors and
 * answers an undecodable binary message with INTERNAL "parse binary: ..." (its
 * createBinarySerialization hard-codes Code.Internal; no option changes that,
 * grpc-go does the same, connect-go says INVALID_ARGUMENT). The client keeps
 * getting what the runtime answered; the log line says it was the client
 * (`fault: "client"`), so an INTERNAL here is not a server bug to chase.
 */
export function accountRefusedCalls(router: ConnectRouter, log: Logger, metrics: Metrics): void {
  router.handlers.forEach((handler, i) => {
    const procedure = `/${handler.service.typeName}/${handler.method.name}`;
    const observed = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
      const started = performance.now();
      const res = await handler(req);
      // By now a call the runtime let through has entered the pipeline: the
      // handler resolves only once the first response bytes (or the status) exist.
      if (req.contextValues?.get(pipelineEnteredKey)?.entered !== false) return res;
      const chunks: Uint8Array[] = [];
      if (res.body) for await (const chunk of res.body) chunks.push(chunk); // a refusal is one status, no messages
      const error = refusalOf(req, res, chunks);
      const code = codeName(error.code);
      const seconds = (performance.now() - started) / 1000;
      const requestId = req.contextValues.get(requestIdKey);
      metrics.rpcCalls.inc({ procedure, code });
      metrics.rpcDuration.observe({ procedure, code }, seconds);
      log.warn(
        { procedure, code, durationMs: Math.round(seconds * 100_000) / 100, requestId, error: error.rawMessage, fault: "client" },
        "rpc refused before the pipeline: malformed request",
      );
      const header = new Headers(res.header);
      header.set("x-request-id", requestId);
      return { ...res, header, body: res.body && createAsyncIterable(chunks) };
    };
    router.handlers[i] = Object.assign(observed, handler);
  });
}

/** The status a refused call was answered with, read back from its protocol's framing. */
function refusalOf(req: UniversalServerRequest, res: UniversalServerResponse, body: Uint8Array[]): ConnectError {
  const contentType = req.header.get("content-type") ?? "";
  const last = body.at(-1);
  const fallback = new ConnectError(`HTTP ${res.status}`, codeFromHttpStatus(res.status));
  try {
    if (contentType.startsWith("application/grpc-web")) {
      return (last && last[0] & trailerFlag ? findTrailerError(trailerParse(last.subarray(5))) : undefined) ?? fallback;
    }
    if (contentType.startsWith("application/grpc")) return findTrailerError(res.trailer ?? new Headers()) ?? fallback;
    if (contentType.startsWith("application/connect+")) {
      return (last && last[0] & endStreamFlag ? endStreamFromJson(last.subarray(5)).error : undefined) ?? fallback;
    }
    return last && res.status !== 200 ? errorFromJsonBytes(last, undefined, fallback) : fallback;
  } catch {
    return fallback;
  }
}
