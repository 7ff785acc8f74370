/**
 * Redlock over three nodes: the shared Redis plus two started here, so they
 * can be stopped. The lock only cuts contention; with the quorum gone holds go
 * on under the database guard alone (the documented choice), or are refused
 * UNAVAILABLE when the caller asks for that.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { DEMO_CONCERTS } from "../../src/modules/concert/demo-catalog";
import { holdSeat, type HoldSeatInput, type HoldSeatOptions } from "../../src/modules/reservation/seat-hold.service";
import { ManualClock } from "../../src/platform/clock";
import { errorReason } from "../../src/platform/errors";
import { createRedlockLocks, type Locks } from "../../src/platform/locks";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { startRedis, testRedisUrl } from "../harness";
import type { RedisServer } from "../harness/services";
import { namespaced, openSeededDatabase, quietLog, tally, type SeededDatabase } from "./support";

const [, BTS] = DEMO_CONCERTS;
const clock = new ManualClock();
let s: SeededDatabase;
let extra: RedisServer[] = [];
let clients: Redis[] = [];
let locks: Locks;

beforeAll(async () => {
  [s, ...extra] = await Promise.all([openSeededDatabase(), startRedis(), startRedis()]);
  clients = await connectRedis([testRedisUrl(), ...extra.map((r) => r.url)], quietLog);
  locks = namespaced(createRedlockLocks(clients, quietLog), `quorum-${randomBytes(4).toString("hex")}`);
});
afterAll(async () => {
  await closeRedis(clients);
  await Promise.all(extra.map((r) => r.stop()));
  await s?.close();
});

const hold = (input: HoldSeatInput, options?: HoldSeatOptions, using = locks) => holdSeat(s.orm.em.fork(), using, clock, s.config.hold, input, options);
const rush = async (date: string, seatNumber: number, n: number, options?: HoldSeatOptions) =>
  tally(
    await Promise.allSettled(
      Array.from({ length: n }, (_, i) => hold({ userId: `fan-${date}-${seatNumber}-${i}`, concertId: BTS.id, date, seatNumber }, options)),
    ),
  );

async function stop(i: number): Promise<void> {
  await extra[i].stop();
  // The client notices the closed socket and from then on fails fast (no offline queue).
  while (clients[i + 1].status === "ready") await new Promise((r) => setTimeout(r, 5));
}

test("three nodes up: one winner, won under the lock", async () => {
  const t = await rush(BTS.dates[0], 1, 100);
  expect(t.errors).toEqual([]);
  expect(t.won).toHaveLength(1);
  expect(t.won[0].lock).toBe("acquired");
  expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 99 });
});

test("one node of three stopped: the quorum still grants locks and holds work", async () => {
  await stop(1);
  const single = await hold({ userId: "solo", concertId: BTS.id, date: BTS.dates[0], seatNumber: 2 });
  expect(single.lock).toBe("acquired");
  const t = await rush(BTS.dates[0], 3, 100);
  expect(t.errors).toEqual([]);
  expect(t.won).toHaveLength(1);
  expect(t.won[0].lock).toBe("acquired");
  expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 99 });
});

describe("no quorum (two of three stopped)", () => {
  beforeAll(() => stop(0));

  test("holds go on under the database guard alone, quickly, and still one winner per seat", async () => {
    const started = performance.now();
    const single = await hold({ userId: "solo", concertId: BTS.id, date: BTS.dates[1], seatNumber: 1 });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(single.lock).toBe("unavailable");
    const t = await rush(BTS.dates[1], 2, 100);
    expect(t.errors).toEqual([]);
    expect(t.won).toHaveLength(1);
    expect(t.won[0].lock).toBe("unavailable");
    expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 99 });
  });

  test("a caller that wants the lock or nothing gets UNAVAILABLE LOCK_UNAVAILABLE at once", async () => {
    const started = performance.now();
    const err = await hold({ userId: "strict", concertId: BTS.id, date: BTS.dates[1], seatNumber: 3 }, { onLockUnavailable: "refuse" }).catch((e) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("LOCK_UNAVAILABLE");
  });

  test("every node of a quorum down behaves the same", async () => {
    const allDown = createRedlockLocks(clients.slice(1), quietLog); // both stopped nodes
    const r = await hold({ userId: "solo-2", concertId: BTS.id, date: BTS.dates[1], seatNumber: 4 }, {}, allDown);
    expect(r.lock).toBe("unavailable");
    expect(r.reservation.status).toBe("HELD");
  });
});
