import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type Interceptor, type UnaryRequest } from "@connectrpc/connect";
import { Counter, type Registry } from "prom-client";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts } from "rate-limiter-flexible";
import { QueueService, type IssueTokenRequest } from "../../gen/boxoffice/queue/v1/queue_service_pb.js";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { WalletService, type ChargeBalanceRequest } from "../../gen/boxoffice/wallet/v1/wallet_service_pb.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { RateLimit, RateLimitConfig } from "../config.js";
import { domainError } from "../platform/errors.js";
import type { Logger } from "../platform/logger.js";
import { Reason } from "../platform/reasons.js";
import type { Redis } from "../platform/redis.js";
import { callerKey, clientAddressKey, principalKey } from "./context.js";

export type LimitName = "unauthenticated" | "issueToken" | "issueTokenAddress" | "holdSeat" | "holdSeatAddress" | "charge" | "chargeAddress";

export interface RateLimits {
  /** Takes one call from `name`'s budget for `key`; throws RESOURCE_EXHAUSTED (reason RATE_LIMITED, RetryInfo) when spent. */
  consume(name: LimitName, key: string): Promise<void>;
}

/** What each budget counts, as the refusal tells the caller. */
const BUDGETS: Record<LimitName, string> = {
  unauthenticated: "calls without a verified caller from this address",
  issueToken: "IssueToken calls for this user",
  issueTokenAddress: "IssueToken calls from this address",
  holdSeat: "HoldSeat calls for this user",
  holdSeatAddress: "HoldSeat calls from this address",
  charge: "ChargeBalance calls for this wallet",
  chargeAddress: "ChargeBalance calls from this address",
};

/** The Redis keys every budget lives under: `<prefix><name>:<key>`. */
export const RATE_LIMIT_REDIS_PREFIX = "boxoffice:rl:";

/** An INCR takes well under a millisecond; past this Redis counts as down for the call. */
const REDIS_TIMEOUT_MS = 250;

type Limiter = { consume(key: string, points: number, options: object): Promise<RateLimiterRes> };

/**
 * The per-instance budget used while Redis does not answer. It tells `onUse`
 * which calls it served (by the options object each call passes through).
 */
class FallbackLimiter extends RateLimiterMemory {
  constructor(
    opts: ConstructorParameters<typeof RateLimiterMemory>[0],
    private readonly onUse: (call: object) => void,
  ) {
    super(opts);
  }

  override consume(key: string | number, points?: number, options: { [key: string]: unknown } = {}): Promise<RateLimiterRes> {
    this.onUse(options);
    return super.consume(key, points, options);
  }
}

/**
 * One limiter per configured budget (an unset budget is off). With Redis the
 * budgets are shared by every instance; while Redis fails or stalls each
 * instance keeps the same budget in its own memory, so an outage neither
 * refuses every call nor lets them all through. `keyPrefix` keeps deployments
 * (or test runs) sharing one Redis apart.
 */
export function createRateLimits(
  config: RateLimitConfig,
  redis: Redis | undefined,
  log: Logger,
  registry: Registry,
  keyPrefix: string = RATE_LIMIT_REDIS_PREFIX,
): RateLimits {
  if (!config.enabled) return { consume: async () => {} };
  const refused = new Counter({
    name: "rate_limited_total",
    help: "Calls refused because a call budget was spent, by budget",
    labelNames: ["limit"],
    registers: [registry],
  });
  const store = redis && createStoreHealth(log, registry);
  const budgets = new Map<LimitName, { limit: RateLimit; limiter: Limiter }>();
  for (const name of Object.keys(BUDGETS) as LimitName[]) {
    const limit = config[name];
    if (!limit) continue;
    const opts = { points: limit.points, duration: limit.durationMs / 1000 };
    if (!redis || !store) {
      budgets.set(name, { limit, limiter: new RateLimiterMemory({ ...opts, keyPrefix: name }) });
      continue;
    }
    const shared = new RateLimiterRedis({
      ...opts,
      storeClient: redis,
      useRedisPackage: false, // ioredis, not node-redis
      rejectIfRedisNotReady: true,
      keyPrefix: `${keyPrefix}${name}`,
      // A key past its budget is refused from memory until its window ends: a flood costs Redis nothing.
      inMemoryBlockOnConsumed: limit.points + 1,
    });
    const insuranceLimiter = new FallbackLimiter({ ...opts, keyPrefix: name }, (call) => store.fellBack(name, call));
    budgets.set(name, { limit, limiter: new RLWrapperTimeouts({ limiter: shared, timeoutMs: REDIS_TIMEOUT_MS, insuranceLimiter }) });
  }

  return {
    async consume(name, key) {
      const budget = budgets.get(name);
      if (!budget) return;
      const call = {};
      try {
        await budget.limiter.consume(key, 1, call);
        // Only a call let through proves Redis answered: a refusal may come from the in-memory block.
        store?.answered(call);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const retryAfterMs = Math.max(1, Math.ceil(err.msBeforeNext));
        refused.inc({ limit: name });
        // The key is a user id or an address: never above debug.
        log.debug({ limit: name, key, retryAfterMs }, "rate limited");
        throw domainError(
          Code.ResourceExhausted,
          Reason.RATE_LIMITED,
          `too many ${BUDGETS[name]} (${budget.limit.points} per ${formatWindow(budget.limit.durationMs)}); retry in ${formatRetry(retryAfterMs)}`,
          { limit: name, retry_after_ms: String(retryAfterMs) },
          [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(retryAfterMs) } }],
        );
      }
    },
  };
}

/**
 * Whether the shared store answers, logged once per outage (a warning when
 * the first call falls back, a note when a call passes through Redis again),
 * not per call.
 */
function createStoreHealth(log: Logger, registry: Registry) {
  const fallbacks = new Counter({
    name: "rate_limit_fallback_total",
    help: "Calls counted against this instance's own budget because Redis did not answer, by budget",
    labelNames: ["limit"],
    registers: [registry],
  });
  const servedLocally = new WeakSet<object>();
  let degraded = false;
  return {
    fellBack(name: LimitName, call: object) {
      servedLocally.add(call);
      fallbacks.inc({ limit: name });
      if (degraded) return;
      degraded = true;
      log.warn({ limit: name }, "rate limits: Redis does not answer; counting per instance until it does");
    },
    answered(call: object) {
      if (!degraded || servedLocally.has(call)) return;
      degraded = false;
      log.info("rate limits: Redis answers again; budgets are shared again");
    },
  };
}

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

/** Seconds, rounded up to a tenth: a client that waits that long is not refused again. */
function formatRetry(ms: number): string {
  return `${Math.ceil(ms / 100) / 10} s`;
}

type Charge = (req: UnaryRequest) => [LimitName, string][];

const procedure = (service: { typeName: string }, method: { name: string }) => `${service.typeName}/${method.name}`;

/** Which budgets each limited RPC spends, per address first, then per user. */
const CHARGES = new Map<string, Charge>([
  [
    procedure(QueueService, QueueService.method.issueToken),
    (req) => {
      const address = req.contextValues.get(clientAddressKey);
      const p = req.contextValues.get(principalKey);
      const user = p.kind === "user" ? p.userId : (req.message as IssueTokenRequest).userId;
      return [
        ["issueTokenAddress", address],
        ["issueToken", user || address],
      ];
    },
  ],
  [
    procedure(ReservationService, ReservationService.method.holdSeat),
    (req) => {
      const address = req.contextValues.get(clientAddressKey);
      return [
        ["holdSeatAddress", address],
        ["holdSeat", req.contextValues.get(callerKey)?.userId ?? address],
      ];
    },
  ],
  [
    procedure(WalletService, WalletService.method.chargeBalance),
    (req) => {
      const address = req.contextValues.get(clientAddressKey);
      const p = req.contextValues.get(principalKey);
      // The wallet credited: the one named, else the caller's own.
      const wallet = (req.message as ChargeBalanceRequest).userId || (p.kind === "user" ? p.userId : "");
      return [
        ["chargeAddress", address],
        ["charge", wallet || address],
      ];
    },
  ],
]);

/**
 * Per-address and per-user budgets on the unary RPCs worth abusing. Runs
 * after the gate and validation, so it knows who acts and refuses before any work.
 */
export function createRateLimitInterceptor(limits: RateLimits): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const charge = CHARGES.get(procedure(req.service, req.method));
    if (charge) for (const [name, key] of charge(req)) await limits.consume(name, key);
    return next(req);
  };
}
