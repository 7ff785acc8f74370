import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Handler, Request, Response } from "./http-endpoints.js";
import type { Logger } from "./platform/logger.js";

export interface ConnectHandlerOptions {
  routes(router: ConnectRouter): void;
  interceptors: Interceptor[];
  contextValues(req: Request): ContextValues;
  readMaxBytes: number;
  fallback: Handler;
  log: Logger;
}

/**
 * connect-node's request handler for Connect and gRPC-Web (connectNodeAdapter
 * does the same), except for one thing: a client that goes away while its
 * response is being written (a browser closing a WatchQueueStatus stream) is
 * normal, and connectNodeAdapter prints it to the console as a failed handler
 * ("ERR_STREAM_DESTROYED", "ERR_HTTP2_INVALID_STREAM"). Here it is a debug
 * line; anything else still reaches the log as an error. The call itself was
 * already logged and counted by the pipeline.
 */
export function createConnectHandler(options: ConnectHandlerOptions): Handler {
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0]);
    if (!handler) return options.fallback(req, res);
    const uReq = universalRequestFromNodeRequest(req, res as never, undefined, options.contextValues(req));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        const procedure = `/${handler.service.typeName}/${handler.method.name}`;
        if (clientWentAway(reason, res)) options.log.debug({ procedure, reason: String(reason) }, "client went away before its response was written");
        else options.log.error({ procedure, err: reason }, "writing a response failed");
      });
  };
}

function clientWentAway(reason: unknown, res: Response): boolean {
  if (ConnectError.from(reason).code === Code.Aborted) return true;
  const cause = (reason as { cause?: { code?: unknown } })?.cause?.code ?? (reason as { code?: unknown })?.code;
  return res.destroyed || cause === "ERR_STREAM_DESTROYED" || cause === "ERR_HTTP2_INVALID_STREAM" || cause === "ECONNRESET" || cause === "EPIPE";
}
