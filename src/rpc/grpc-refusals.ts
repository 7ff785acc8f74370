import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../platform/logger.js";
import type { Metrics } from "../platform/metrics.js";
import { codeName } from "./codes.js";
import { requestId } from "./pipeline.js";

/**
 * Calls grpc-js answers itself, before the adapter hands them to the
 * pipeline (a second message on a unary call, a message over the size limit,
 * broken framing), get the one log line and metric sample every other call
 * gets, as `refused-calls.ts` does for connect-node. A status is the
 * pipeline's when the call's headers or trailers carry the x-request-id the
 * pipeline always sets; anything else was the runtime's.
 */
export function createGrpcRefusalInterceptor(log: Logger, metrics: Metrics): grpc.ServerInterceptor {
  return (method, call) => {
    let given: string | undefined;
    let ours = false;
    const started = performance.now();
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            const sent = metadata.get("x-request-id")[0];
            given = typeof sent === "string" ? sent : undefined;
            nextMetadata(metadata);
          },
        });
      },
      sendMetadata(metadata, next) {
        if (metadata.get("x-request-id").length) ours = true;
        next(metadata);
      },
      sendStatus(status, next) {
        if (!ours && !status.metadata?.get("x-request-id").length) {
          // As the pipeline takes it: the client's if it is a sane one, else a new one.
          const id = requestId(given);
          const code = codeName(status.code as number);
          const seconds = (performance.now() - started) / 1000;
          metrics.rpcCalls.inc({ procedure: method.path, code });
          metrics.rpcDuration.observe({ procedure: method.path, code }, seconds);
          log.warn(
            { procedure: method.path, code, durationMs: Math.round(seconds * 100_000) / 100, requestId: id, error: status.details, fault: "client" },
            "rpc refused before the pipeline: malformed request",
          );
          const metadata = status.metadata?.clone() ?? new grpc.Metadata();
          metadata.set("x-request-id", id);
          return next({ ...status, metadata });
        }
        next(status);
      },
    });
  };
}
