// PLACEHOLDER: being written (rate-limiter-flexible); interface fixed here.
import type { Interceptor } from "@connectrpc/connect";

export type LimitName = "unauthenticated" | "issueToken" | "issueTokenAddress" | "holdSeat" | "holdSeatAddress" | "charge" | "chargeAddress";

export interface RateLimits {
  /** Takes one call from `name`'s budget for `key`; throws RESOURCE_EXHAUSTED (reason RATE_LIMITED, RetryInfo) when spent. */
  consume(name: LimitName, key: string): Promise<void>;
}

export function createRateLimitInterceptor(_limits: RateLimits): Interceptor {
  return (next) => (req) => next(req);
}

import type { Registry } from "prom-client";
import type { RateLimitConfig } from "../config.js";
import type { Logger } from "../platform/logger.js";
import type { Redis } from "../platform/redis.js";
export function createRateLimits(_config: RateLimitConfig, _redis: Redis | undefined, _log: Logger, _registry: Registry): RateLimits {
  return { consume: async () => {} };
}
