/**
 * Call budgets over a real Redis: shared by every instance, and while Redis is
 * down or stalled each instance falls back to the same budget in its own memory
 * (neither refusing everything nor letting everything through), saying so once.
 */
import { randomBytes } from "node:crypto";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb";
import type { RateLimitConfig } from "../../src/config";
import { errorReason } from "../../src/platform/errors";
import { createLogger, type Logger } from "../../src/platform/logger";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { createRateLimits } from "../../src/rpc/rate-limit";
import { startRedis, testRedisUrl, type RedisServer } from "../harness";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = createLogger("silent");

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

async function counted(registry: Registry, metric: string, limit: string): Promise<number> {
  const m = await registry.getSingleMetric(metric)?.get();
  return m?.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

const ISSUE_3_PER_SECOND: RateLimitConfig = { enabled: true, issueToken: { points: 3, durationMs: 1000 } };

describe("over the shared Redis", () => {
  // The Redis is shared with suites running in parallel: this run's keys live apart.
  const prefix = `test:rl:${randomBytes(4).toString("hex")}:`;
  let a: Redis;
  let b: Redis;

  beforeAll(async () => {
    [a] = await connectRedis([testRedisUrl()], quiet);
    [b] = await connectRedis([testRedisUrl()], quiet);
  });

  afterAll(async () => {
    const keys = await a.keys(`${prefix}*`);
    if (keys.length) await a.del(...keys);
    await closeRedis([a, b]);
  });

  test("a spent budget answers RESOURCE_EXHAUSTED with RATE_LIMITED and RetryInfo, counted in Redis; it recovers after the window", async () => {
    const registry = new Registry();
    const { log, lines } = capturingLogger("info");
    const limits = createRateLimits(ISSUE_3_PER_SECOND, a, log, registry, prefix);
    for (let i = 0; i < 3; i++) await limits.consume("issueToken", "u-redis-1");
    expect(Number(await a.get(`${prefix}issueToken:u-redis-1`))).toBe(3);

    const err = await refusalOf(limits.consume("issueToken", "u-redis-1"));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("RATE_LIMITED");
    expect(err.rawMessage).toContain("IssueToken calls for this user (3 per 1s)");
    const info = err.findDetails(ErrorInfoSchema)[0];
    expect(info.metadata.limit).toBe("issueToken");
    const retryAfterMs = Number(info.metadata.retry_after_ms);
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    expect(durationMs(err.findDetails(RetryInfoSchema)[0].retryDelay!)).toBe(retryAfterMs);
    expect(await counted(registry, "rate_limited_total", "issueToken")).toBe(1);

    await sleep(retryAfterMs + 50);
    for (let i = 0; i < 3; i++) await limits.consume("issueToken", "u-redis-1");
    await expect(limits.consume("issueToken", "u-redis-1")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // Redis answered every call: nothing fell back, nothing was logged.
    expect(await counted(registry, "rate_limit_fallback_total", "issueToken")).toBe(0);
    expect(lines).toEqual([]);
  });

  test("two server instances (own clients, own limiters) spend one shared budget", async () => {
    const one = createRateLimits(ISSUE_3_PER_SECOND, a, quiet, new Registry(), prefix);
    const two = createRateLimits(ISSUE_3_PER_SECOND, b, quiet, new Registry(), prefix);
    await one.consume("issueToken", "u-shared");
    await one.consume("issueToken", "u-shared");
    await two.consume("issueToken", "u-shared");
    await expect(two.consume("issueToken", "u-shared")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    await expect(one.consume("issueToken", "u-shared")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // Budgets are per name: the same key under another budget is untouched.
    const other = createRateLimits({ enabled: true, holdSeat: { points: 1, durationMs: 1000 } }, b, quiet, new Registry(), prefix);
    await other.consume("holdSeat", "u-shared");
  });
});

describe("when Redis fails", () => {
  let redis: RedisServer;
  let client: Redis;

  beforeEach(async () => {
    redis = await startRedis();
    [client] = await connectRedis([redis.url], quiet);
  });

  afterEach(async () => {
    try {
      process.kill(redis.pid, "SIGCONT");
    } catch {
      // already gone
    }
    await closeRedis([client]);
    await redis.stop();
  });

  const config: RateLimitConfig = {
    enabled: true,
    issueToken: { points: 2, durationMs: 60_000 },
    holdSeat: { points: 2, durationMs: 60_000 },
  };

  test("Redis stopped: each instance keeps the same budget in memory, and says so once", async () => {
    const registry = new Registry();
    const { log, lines } = capturingLogger("info");
    const limits = createRateLimits(config, client, log, registry, "test:rl:");
    await limits.consume("issueToken", "u-down");
    expect(Number(await client.get("test:rl:issueToken:u-down"))).toBe(1);
    // A key refused through Redis stays refused from this instance's memory for its window.
    await limits.consume("holdSeat", "u-blocked");
    await limits.consume("holdSeat", "u-blocked");
    await expect(limits.consume("holdSeat", "u-blocked")).rejects.toMatchObject({ code: Code.ResourceExhausted });

    await redis.stop();
    for (let i = 0; i < 100 && client.status === "ready"; i++) await sleep(20);
    expect(client.status).not.toBe("ready");

    // The memory budget starts afresh: two calls pass, the third is refused like any spent budget.
    await limits.consume("issueToken", "u-down");
    // (A refusal from the in-memory block is no sign that Redis is back.)
    await expect(limits.consume("holdSeat", "u-blocked")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    await limits.consume("issueToken", "u-down");
    const err = await refusalOf(limits.consume("issueToken", "u-down"));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("RATE_LIMITED");
    expect(err.findDetails(RetryInfoSchema)).toHaveLength(1);
    // Another budget falls back the same way.
    await limits.consume("holdSeat", "u-down");
    await limits.consume("holdSeat", "u-down");
    await expect(limits.consume("holdSeat", "u-down")).rejects.toMatchObject({ code: Code.ResourceExhausted });

    expect(await counted(registry, "rate_limit_fallback_total", "issueToken")).toBe(3);
    expect(await counted(registry, "rate_limit_fallback_total", "holdSeat")).toBe(3);
    // One warning for the whole outage, nothing per call.
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: expect.stringMatching(/Redis does not answer/) })]);
  });

  test("Redis stalled: calls fall back within a fraction of a second, and budgets are shared again once it answers", async () => {
    const { log, lines } = capturingLogger("info");
    const limits = createRateLimits(config, client, log, new Registry(), "test:rl:");
    await limits.consume("issueToken", "u-stall");

    process.kill(redis.pid, "SIGSTOP");
    const started = Date.now();
    await limits.consume("issueToken", "u-stall");
    await limits.consume("issueToken", "u-stall");
    await expect(limits.consume("issueToken", "u-stall")).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);

    process.kill(redis.pid, "SIGCONT");
    // Redis counts what it is given again: the stalled calls that reached it, then this one.
    await limits.consume("holdSeat", "u-stall");
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [40, expect.stringMatching(/Redis does not answer/)],
      [30, expect.stringMatching(/Redis answers again/)],
    ]);
    expect(Number(await client.get("test:rl:holdSeat:u-stall"))).toBe(1);
  });
});
