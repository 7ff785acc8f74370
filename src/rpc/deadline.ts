import type { Interceptor } from "@connectrpc/connect";
import { withCallDeadline } from "../platform/db/deadline.js";

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_UNIT_MS = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 } as const;

/** The timeout a client sent (gRPC and gRPC-Web `grpc-timeout`, Connect `connect-timeout-ms`), in ms. */
export function requestTimeoutMs(header: Headers): number | undefined {
  const grpc = GRPC_TIMEOUT.exec(header.get("grpc-timeout") ?? "");
  if (grpc) return Number(grpc[1]) * GRPC_UNIT_MS[grpc[2] as keyof typeof GRPC_UNIT_MS];
  const connect = header.get("connect-timeout-ms");
  return connect && /^\d{1,10}$/.test(connect) ? Number(connect) : undefined;
}

/**
 * Carries the call's deadline into the work it starts: database transactions
 * begun under it get no more time than is left (platform/db/deadline.ts).
 * The runtime itself ends the call at the deadline (DEADLINE_EXCEEDED).
 */
export function createDeadlineInterceptor(): Interceptor {
  return (next) => (req) => {
    const ms = requestTimeoutMs(req.header);
    return withCallDeadline(ms === undefined ? undefined : Date.now() + ms, () => next(req));
  };
}
