/**
 * What only the Redis store can show: the keys it keeps. ACTIVE idleness must
 * not cost anything per waiting user (the README promises ~150 B each).
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { AdmissionLimits } from "../../src/modules/queue/queue-store";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { testRedisUrl } from "../harness";
import { T0 } from "./support";

const IDLE = 120_000;
const limits: AdmissionLimits = {
  maxActive: 10,
  admitPerSecond: 1000,
  burst: 1000,
  activeTtlMs: 600_000,
  activeIdleTtlMs: 1000,
  idleTtlMs: IDLE,
  sweepBatch: 2000,
};

let redis: Redis;
beforeAll(() => {
  redis = new Redis(testRedisUrl());
});
afterAll(() => redis.quit());

test("idle tracking keeps one score per ACTIVE user and nothing per waiting user, and leaves nothing behind", async () => {
  const prefix = `idle:${randomBytes(4).toString("hex")}:`;
  const store = createRedisQueueStore(redis, prefix);
  const tickets = await Promise.all(Array.from({ length: 200 }, (_, i) => store.issue(`u${i}`, T0, IDLE)));
  const topLevel = async () => (await redis.keys(`${prefix}*`)).filter((k) => !k.startsWith(`${prefix}u:`)).sort();
  const records = async () => Promise.all(tickets.map((t) => redis.hget(`${prefix}u:${bucketOf(t.userId)}`, t.userId)));
  // Besides the line and the counter only the generation and one issue-minute entry: nothing per user.
  expect(await topLevel()).toEqual([`${prefix}born`, `${prefix}gen`, `${prefix}seq`, `${prefix}wait`]);
  expect(await redis.zcard(`${prefix}born`)).toBe(1);
  const waitingRecords = await records();
  expect(waitingRecords.every((r) => r?.endsWith(`:${T0}`))).toBe(true);

  await store.admit(T0, limits);
  expect(await redis.zcard(`${prefix}used`)).toBe(10);
  expect(await redis.zcard(`${prefix}active`)).toBe(10);

  // A gated use of every ticket: the 10 ACTIVE get a later deadline; the 190 waiting get nothing.
  await store.status(tickets, T0 + 500, IDLE, { activeIdleTtlMs: limits.activeIdleTtlMs });
  expect(await redis.zcard(`${prefix}used`)).toBe(10);
  expect((await redis.zrange(`${prefix}used`, "0", "-1", "WITHSCORES")).filter((_, i) => i % 2 === 1)).toEqual(Array(10).fill(String(T0 + 1500)));
  const after = await records();
  const sorted = [...tickets].sort((a, b) => a.seq - b.seq);
  const activeIds = new Set(sorted.slice(0, 10).map((t) => t.userId));
  tickets.forEach((t, i) => {
    if (!activeIds.has(t.userId)) expect(after[i]).toBe(waitingRecords[i]);
  });

  // They all go idle; the next 10 take their places, and only their scores remain.
  expect(await store.admit(T0 + 1500, limits)).toMatchObject({ expiredIdleActive: 10, admitted: 10 });
  expect(await redis.zcard(`${prefix}used`)).toBe(10);
  for (const t of sorted.slice(10, 20)) await store.expire(t);
  expect(await redis.exists(`${prefix}used`)).toBe(0);
});

/** The store's bucket of a user (the same hash as its Lua). */
function bucketOf(u: string): number {
  let h = 0;
  for (let i = 0; i < u.length; i++) h = (h * 31 + u.charCodeAt(i)) % 16384;
  return h;
}
