/**
 * The queue's Redis (no persistence) is killed and comes back EMPTY, under two
 * running instances, and a third instance starts right after. Measured before
 * the fix: the new instance wrote a new token secret, so tokens of one
 * instance were QUEUE_TOKEN_INVALID on another, and every buyer, ACTIVE ones
 * included, was QUEUE_TOKEN_EXPIRED and went to the back of the line.
 * Now: no instance disagrees about a token, WAITING buyers keep their order,
 * ACTIVE ones stay ACTIVE until their original window ends, and new buyers
 * queue behind them. Instances are Queue objects over their own ioredis
 * clients, built as the server builds them; time is a manual clock.
 */
import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { SECRET_SYNC_MS } from "../../src/modules/queue/token-keys";
import { createQueueMetrics } from "../../src/modules/queue/queue.metrics";
import { Queue, type QueueSettings, type Ticket } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { createLogger } from "../../src/platform/logger";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { eventually, spawnRedis, type RedisProcess } from "../queue/redis-processes";

const T0 = Date.parse("2026-12-01T10:00:00Z");
const settings: QueueSettings = {
  maxActive: 2,
  admitPerSecond: 1000,
  activeTtlMs: 600_000,
  activeIdleTtlMs: 600_000,
  idleTtlMs: 600_000,
  tickMs: 250,
  streamPositionIntervalMs: 0,
  maxStreamsPerToken: 4,
};
const log = createLogger("silent");
const clock = new ManualClock(T0);
const prefix = `fault:${randomBytes(4).toString("hex")}:`;

let redis: RedisProcess;
const clients: Redis[] = [];
const registries: Registry[] = [];

/** One server instance: its own client, store, Queue and metrics, as src/deps.ts wires them. */
async function instance(): Promise<Queue> {
  const [client] = await connectRedis([redis.url], log);
  clients.push(client);
  const registry = new Registry();
  registries.push(registry);
  return new Queue(
    createRedisQueueStore(client, prefix),
    clock,
    settings,
    log,
    createQueueMetrics(registry, () => 0),
  );
}

/** queue_restored_total over all instances. */
async function restoredTotal(): Promise<number> {
  let n = 0;
  for (const r of registries) n += (await r.getSingleMetric("queue_restored_total")!.get()).values[0]?.value ?? 0;
  return n;
}

beforeAll(async () => {
  redis = await spawnRedis();
});
afterAll(async () => {
  await closeRedis(clients);
  await redis?.remove();
});

/** The same ticket as seen from `queue`: the token must verify there. */
const on = (queue: Queue, t: Ticket) => queue.getStatus(t.token);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("an empty restart of the queue's Redis: one secret, the same line, ACTIVE buyers still ACTIVE, newcomers behind", async () => {
  const a = await instance();
  const b = await instance();

  // Six buyers through both instances; the first two are admitted and keep the token they are handed then.
  const buyers: Ticket[] = [];
  for (let i = 0; i < 6; i++) buyers.push(await (i % 2 ? b : a).issueToken(`buyer-${i}`));
  expect(await a.tick()).toMatchObject({ admitted: 2, active: 2, waiting: 4 });
  const held = await Promise.all(buyers.map((t, i) => on(i % 2 ? a : b, t)));
  expect(held.map((t) => t.state)).toEqual(["ACTIVE", "ACTIVE", "WAITING", "WAITING", "WAITING", "WAITING"]);
  expect(held.slice(2).map((t) => t.position)).toEqual([0, 1, 2, 3]);
  const activeUntil = held[0].expiresAt!.getTime();
  const secretBefore = await clients[0].get(`${prefix}secret`);

  await redis.kill();
  await redis.start(); // empty: no AOF, no RDB
  await eventually("both clients reconnected", 10_000, async () => (clients.every((c) => c.status === "ready") ? true : undefined));

  // A third instance starts before the others notice: it finds no secret and writes its own.
  const c = await instance();
  await c.tick();
  const secretAfter = await clients[2].get(`${prefix}secret`);
  expect(secretAfter).not.toBeNull();
  expect(secretAfter).not.toBe(secretBefore); // the split the old cache could not survive
  // The others' next rounds: they adopt the stored secret and hand theirs to the store for verifying.
  await sleep(SECRET_SYNC_MS + 50);
  clock.advance(10_000);
  await a.tick();
  await b.tick();

  // A newcomer before anyone came back: numbered above every ticket the instances had seen.
  const newcomer = await c.issueToken("newcomer");

  // Everyone comes back, in another order and through other instances than before.
  const order = [4, 1, 2, 5, 0, 3];
  const back: Ticket[] = [];
  for (const [k, i] of order.entries()) back[i] = await on([a, b, c][k % 3], held[i]);
  expect(back.map((t) => t.state)).toEqual(["ACTIVE", "ACTIVE", "WAITING", "WAITING", "WAITING", "WAITING"]);
  expect(back.slice(0, 2).map((t) => t.expiresAt!.getTime())).toEqual([activeUntil, activeUntil]);
  expect(await restoredTotal()).toBe(6);
  const now = await Promise.all(held.slice(2).map((t) => on(a, t)));
  expect(now.map((t) => t.position)).toEqual([0, 1, 2, 3]);
  expect((await on(b, newcomer)).position).toBe(4);

  // Every token verifies on every instance: the ones from before, the new instance's, and the ones signed since.
  const later = await a.issueToken("later");
  for (const t of [...held, ...back, newcomer, later]) for (const q of [a, b, c]) expect((await on(q, t)).userId).toBe(t.userId);
  expect((await on(c, later)).position).toBe(5);

  // ACTIVE until the original window ends (using it meanwhile), then the line moves on in order.
  clock.advance(activeUntil - 1 - clock.now().getTime());
  for (const t of back.slice(0, 2)) expect((await c.admitCaller(t.token)).state).toBe("ACTIVE");
  expect(await b.tick()).toMatchObject({ admitted: 0, active: 2 });
  clock.advance(1);
  expect(await b.tick()).toMatchObject({ expiredActive: 2, admitted: 2, active: 2, waiting: 4 });
  const after = await Promise.all([...held, newcomer].map((t) => on(c, t)));
  expect(after.map((t) => [t.state, t.position])).toEqual([
    ["EXPIRED", 0],
    ["EXPIRED", 0],
    ["ACTIVE", 0],
    ["ACTIVE", 0],
    ["WAITING", 0],
    ["WAITING", 1],
    ["WAITING", 2],
  ]);
});
