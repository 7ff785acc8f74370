import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, cors as connectCors } from "@connectrpc/connect";
import { ServingStatus, type HealthState } from "./rpc/health.js";

export type Request = IncomingMessage | Http2ServerRequest;
export type Response = ServerResponse | Http2ServerResponse;
export type Handler = (req: Request, res: Response) => void;

/** Answers CORS preflights for the configured origins and decorates their responses. */
export function withCors(origins: string[], next: Handler): Handler {
  if (origins.length === 0) return next;
  const anyOrigin = origins.includes("*");
  const allowMethods = connectCors.allowedMethods.join(", ");
  const allowHeaders = [...connectCors.allowedHeaders, "X-Queue-Token", "X-Request-Id", "Authorization"].join(", ");
  const exposeHeaders = [...connectCors.exposedHeaders, "X-Request-Id"].join(", ");
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin && (anyOrigin || origins.includes(origin))) {
      res.setHeader("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
      res.setHeader("Vary", "Origin");
      res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        res.setHeader("Access-Control-Allow-Methods", allowMethods);
        res.setHeader("Access-Control-Allow-Headers", allowHeaders);
        res.setHeader("Access-Control-Max-Age", "7200");
        res.writeHead(204);
        res.end();
        return;
      }
    }
    next(req, res);
  };
}

/**
 * Plain HTTP endpoints beside the RPCs: a liveness probe. Metrics are not
 * here: they are served on their own loopback listener (METRICS_HOST/PORT),
 * and /metrics on this port is a 404 like any other unknown path.
 */
export function httpEndpoints(health: HealthState, req: Request, res: Response): void {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method === "GET" && path === "/healthz") {
    const serving = health.get("") === ServingStatus.SERVING;
    res.writeHead(serving ? 200 : 503, { "content-type": "text/plain" });
    res.end(serving ? "ok\n" : "shutting down\n");
    return;
  }
  const contentType = String(req.headers["content-type"] ?? "");
  if (req.method === "POST" && contentType.startsWith("application/grpc")) {
    // A gRPC client calling a method this server does not have: answer the way
    // gRPC servers do (a trailers-only UNIMPLEMENTED), not with a bare HTTP 404.
    const status = {
      "content-type": contentType.split(";")[0],
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": grpcPercentEncode(`unknown method ${path}`),
    };
    req.resume(); // whatever the client sends is discarded
    if ("stream" in res) {
      // Trailers-only: the status travels in a HEADERS frame that ends the stream.
      res.stream.respond({ ":status": 200, ...status }, { endStream: true });
    } else {
      res.writeHead(200, status);
      res.end();
    }
    return;
  }
  // Connect clients read HTTP 404 as Code.Unimplemented.
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
}

/** grpc-message encoding: printable ASCII except "%" goes as is, everything else percent-encoded. */
function grpcPercentEncode(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}
