import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { createContextValues, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Logger } from "../platform/logger.js";
import type { Metrics } from "../platform/metrics.js";
import type { Queue } from "../modules/queue/queue.service.js";
import type { Authenticator } from "./auth.js";
import { clientAddressKey, requestIdKey } from "./context.js";
import { createDeadlineInterceptor } from "./deadline.js";
import { createErrorInterceptor } from "./errors.js";
import { createQueueGateInterceptor } from "./gate.js";
import { createAuthInterceptor } from "./identity.js";
import { createLoggingInterceptor } from "./logging.js";
import { createRateLimitInterceptor, type RateLimits } from "./rate-limit.js";

export interface PipelineDeps {
  log: Logger;
  metrics: Metrics;
  auth: Authenticator;
  limits: RateLimits;
  queue: Queue;
  /** X-Forwarded-For entries appended by proxies we trust. */
  trustProxyHops: number;
}

/**
 * The call pipeline, outermost first: log and count every call; map failures
 * to deliberate codes; carry the client's deadline into database work; find out who calls (and count anonymous calls per
 * address); the queue gate; protovalidate; per-user and per-address limits on
 * the RPCs worth abusing. A refused call does no work past the stage that refused it.
 */
export function createInterceptors(deps: PipelineDeps): Interceptor[] {
  return [
    createLoggingInterceptor(deps.log, deps.metrics),
    createErrorInterceptor(deps.log, deps.metrics),
    createDeadlineInterceptor(),
    createAuthInterceptor(deps.auth, (address) => deps.limits.consume("unauthenticated", address)),
    createQueueGateInterceptor(deps.queue),
    createValidateInterceptor(),
    createRateLimitInterceptor(deps.limits),
  ];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Per-call values taken from the transport before the pipeline runs: request id and client address. */
export function createCallContext(trustProxyHops: number): (req: IncomingMessage | Http2ServerRequest) => ContextValues {
  return (req) => {
    const given = req.headers["x-request-id"];
    const id = typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    return createContextValues().set(requestIdKey, id).set(clientAddressKey, clientAddress(req, trustProxyHops));
  };
}

/**
 * The socket's peer, or with `hops` trusted proxies in front, the entry they
 * appended to X-Forwarded-For (counting from the right: a client can prepend
 * anything it likes, but not what our own proxies add after it).
 */
export function clientAddress(req: IncomingMessage | Http2ServerRequest, hops: number): string {
  const peer = req.socket?.remoteAddress ?? "unknown";
  if (hops === 0) return peer;
  const header = req.headers["x-forwarded-for"];
  const entries = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return entries[entries.length - hops] ?? entries[0] ?? peer;
}
