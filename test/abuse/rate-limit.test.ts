/**
 * Call budgets in one process (no Redis): the refusal clients see, recovery
 * after the window, what is logged, and which budgets each limited RPC spends.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { IssueTokenResponseSchema, QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { HoldSeatResponseSchema, ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { ChargeBalanceResponseSchema, WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb";
import type { RateLimitConfig } from "../../src/config";
import { errorReason } from "../../src/platform/errors";
import { createLogger, type Logger } from "../../src/platform/logger";
import { callerKey, clientAddressKey, principalKey, type Principal } from "../../src/rpc/context";
import { createRateLimitInterceptor, createRateLimits, type LimitName, type RateLimits } from "../../src/rpc/rate-limit";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger whose JSON lines the test can read. */
function capturingLogger(level: string): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger(level, { write: (s: string) => void lines.push(JSON.parse(s)) }), lines };
}

async function refusalOf(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError refusal, got ${String(err)}`);
  return err;
}

async function refusedCount(registry: Registry, limit: string): Promise<number> {
  const metric = await registry.getSingleMetric("rate_limited_total")!.get();
  return metric.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

const ONE_SECOND = { points: 3, durationMs: 1000 };

describe("memory store (no Redis)", () => {
  test("a spent budget answers RESOURCE_EXHAUSTED, RATE_LIMITED, RetryInfo; it recovers after the window", async () => {
    const registry = new Registry();
    const limits = createRateLimits({ enabled: true, issueTokenAddress: ONE_SECOND }, undefined, createLogger("silent"), registry);
    for (let i = 0; i < 3; i++) await limits.consume("issueTokenAddress", "198.51.100.1");

    const err = await refusalOf(limits.consume("issueTokenAddress", "198.51.100.1"));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("RATE_LIMITED");
    expect(err.rawMessage).toMatch(/IssueToken calls from this address \(3 per 1s\); retry in (0\.\d|1) s$/);
    const info = err.findDetails(ErrorInfoSchema)[0];
    expect(info.metadata.limit).toBe("issueTokenAddress");
    const retryAfterMs = Number(info.metadata.retry_after_ms);
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    const retry = err.findDetails(RetryInfoSchema)[0];
    expect(durationMs(retry.retryDelay!)).toBe(retryAfterMs);
    expect(await refusedCount(registry, "issueTokenAddress")).toBe(1);

    // Another key has its own budget.
    await limits.consume("issueTokenAddress", "198.51.100.2");

    await sleep(retryAfterMs + 50);
    for (let i = 0; i < 3; i++) await limits.consume("issueTokenAddress", "198.51.100.1");
    await expect(limits.consume("issueTokenAddress", "198.51.100.1")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(await refusedCount(registry, "issueTokenAddress")).toBe(2);
  });

  test("an unset budget is off, and RATE_LIMITS=off switches every budget off", async () => {
    const some = createRateLimits({ enabled: true, issueToken: { points: 1, durationMs: 60_000 } }, undefined, createLogger("silent"), new Registry());
    for (let i = 0; i < 50; i++) await some.consume("holdSeat", "u1");
    await some.consume("issueToken", "u1");
    await expect(some.consume("issueToken", "u1")).rejects.toMatchObject({ code: Code.ResourceExhausted });

    const all: RateLimitConfig = { enabled: false, issueToken: { points: 1, durationMs: 60_000 }, unauthenticated: { points: 1, durationMs: 60_000 } };
    const none = createRateLimits(all, undefined, createLogger("silent"), new Registry());
    for (let i = 0; i < 50; i++) {
      await none.consume("issueToken", "u1");
      await none.consume("unauthenticated", "198.51.100.1");
    }
  });

  test("the limited key (a user id) is logged at debug only", async () => {
    const config: RateLimitConfig = { enabled: true, holdSeat: { points: 1, durationMs: 60_000 } };
    const info = capturingLogger("info");
    const atInfo = createRateLimits(config, undefined, info.log, new Registry());
    await atInfo.consume("holdSeat", "user-secret-42");
    await expect(atInfo.consume("holdSeat", "user-secret-42")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(JSON.stringify(info.lines)).not.toContain("user-secret-42");

    const debug = capturingLogger("debug");
    const atDebug = createRateLimits(config, undefined, debug.log, new Registry());
    await atDebug.consume("holdSeat", "user-secret-42");
    await expect(atDebug.consume("holdSeat", "user-secret-42")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(debug.lines).toEqual([expect.objectContaining({ level: 20, limit: "holdSeat", key: "user-secret-42", msg: "rate limited" })]);
  });
});

describe("createRateLimitInterceptor: which budgets each RPC spends, and in what order", () => {
  /** Records every consume and refuses the names in `refuse`. */
  function recordingLimits(refuse: LimitName[] = []) {
    const calls: Array<[LimitName, string]> = [];
    const limits: RateLimits = {
      async consume(name, key) {
        calls.push([name, key]);
        if (refuse.includes(name)) throw new ConnectError(`refused ${name}`, Code.ResourceExhausted);
      },
    };
    return { limits, calls };
  }

  /** Stands in for the stages before the limiter: the address, the principal and the gate's caller, from test headers. */
  const upstream: Interceptor = (next) => async (req) => {
    req.contextValues.set(clientAddressKey, req.header.get("x-test-address") ?? "unknown");
    const user = req.header.get("x-test-principal");
    const principal: Principal = user ? { kind: "user", userId: user, scopes: new Set<string>() } : { kind: "anonymous", trusted: true };
    req.contextValues.set(principalKey, principal);
    const caller = req.header.get("x-test-caller");
    if (caller) req.contextValues.set(callerKey, { userId: caller, token: "t" });
    return next(req);
  };

  function clients(limits: RateLimits) {
    let handled = 0;
    const transport = createRouterTransport(
      (router) => {
        router.service(QueueService, {
          issueToken: async () => {
            handled++;
            return create(IssueTokenResponseSchema);
          },
        });
        router.service(ReservationService, {
          holdSeat: async () => {
            handled++;
            return create(HoldSeatResponseSchema);
          },
        });
        router.service(WalletService, {
          chargeBalance: async () => {
            handled++;
            return create(ChargeBalanceResponseSchema);
          },
        });
      },
      { router: { interceptors: [upstream, createRateLimitInterceptor(limits)] } },
    );
    return {
      queue: createClient(QueueService, transport),
      reservation: createClient(ReservationService, transport),
      wallet: createClient(WalletService, transport),
      handled: () => handled,
    };
  }

  test("IssueToken: the address, then the acting user (the token's subject over the request's user_id)", async () => {
    const { limits, calls } = recordingLimits();
    const c = clients(limits);
    await c.queue.issueToken({ userId: "u-body" }, { headers: { "x-test-address": "198.51.100.9" } });
    await c.queue.issueToken({ userId: "u-body" }, { headers: { "x-test-address": "198.51.100.9", "x-test-principal": "u-jwt" } });
    await c.queue.issueToken({ userId: "" }, { headers: { "x-test-address": "198.51.100.9" } });
    expect(calls).toEqual([
      ["issueTokenAddress", "198.51.100.9"],
      ["issueToken", "u-body"],
      ["issueTokenAddress", "198.51.100.9"],
      ["issueToken", "u-jwt"],
      ["issueTokenAddress", "198.51.100.9"],
      ["issueToken", "198.51.100.9"],
    ]);
  });

  test("HoldSeat: the address, then the queue token's user; ChargeBalance: the address, then the wallet credited", async () => {
    const { limits, calls } = recordingLimits();
    const c = clients(limits);
    await c.reservation.holdSeat({ concertId: "c", date: "2027-03-06", seatNumber: 1 }, { headers: { "x-test-address": "a1", "x-test-caller": "u-gate" } });
    await c.wallet.chargeBalance({ userId: "u-wallet", amount: 1n }, { headers: { "x-test-address": "a2", "x-test-principal": "payment-svc" } });
    await c.wallet.chargeBalance({ userId: "", amount: 1n }, { headers: { "x-test-address": "a3", "x-test-principal": "u-self" } });
    expect(calls).toEqual([
      ["holdSeatAddress", "a1"],
      ["holdSeat", "u-gate"],
      ["chargeAddress", "a2"],
      ["charge", "u-wallet"],
      ["chargeAddress", "a3"],
      ["charge", "u-self"],
    ]);
  });

  test("a refused address budget stops the call before the user budget and the handler", async () => {
    const { limits, calls } = recordingLimits(["issueTokenAddress"]);
    const c = clients(limits);
    await expect(c.queue.issueToken({ userId: "u1" }, { headers: { "x-test-address": "a1" } })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(calls).toEqual([["issueTokenAddress", "a1"]]);
    expect(c.handled()).toBe(0);
  });
});
