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
import type { GrpcCallValues } from "./grpc-adapter.js";
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

type HeaderValue = string | string[] | undefined;

/** The request id a client sent, if it is a sane one, or a new one. */
export function requestId(given: HeaderValue): string {
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Per-call values taken from the transport before the pipeline runs: request id and client address. */
export function createCallContext(trustProxyHops: number): (req: IncomingMessage | Http2ServerRequest) => ContextValues {
  return (req) =>
    createContextValues()
      .set(requestIdKey, requestId(req.headers["x-request-id"]))
      .set(clientAddressKey, clientAddress(req.socket?.remoteAddress, req.headers["x-forwarded-for"], trustProxyHops));
}

/** The same values for a call grpc-js carried: from its metadata and its peer ("host:port", "[v6]:port"). */
export function createGrpcCallValues(trustProxyHops: number): GrpcCallValues {
  return (metadata, peer) => {
    const id = metadata.get("x-request-id");
    const forwarded = trustProxyHops ? metadata.get("x-forwarded-for").map(String) : undefined;
    return createContextValues()
      .set(requestIdKey, requestId(id.length === 1 ? String(id[0]) : undefined))
      .set(clientAddressKey, clientAddress(peerHost(peer), forwarded, trustProxyHops));
  };
}

/** "127.0.0.1:5000" → "127.0.0.1", "[::1]:5000" → "::1", as node's remoteAddress reads. */
function peerHost(peer: string): string {
  const v6 = /^\[(.*)\]:\d+$/.exec(peer);
  if (v6) return v6[1];
  const colon = peer.lastIndexOf(":");
  return colon > 0 ? peer.slice(0, colon) : peer;
}

/**
 * The socket's peer, or with `hops` trusted proxies in front, the entry they
 * appended to X-Forwarded-For (counting from the right: a client can prepend
 * anything it likes, but not what our own proxies add after it).
 */
export function clientAddress(peer: string | undefined, forwardedFor: HeaderValue, hops: number): string {
  const socketPeer = peer ?? "unknown";
  if (hops === 0) return socketPeer;
  const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : (forwardedFor ?? ""))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return entries[entries.length - hops] ?? entries[0] ?? socketPeer;
}
