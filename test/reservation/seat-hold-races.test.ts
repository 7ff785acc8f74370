/**
 * Every locking path has a race test: N concurrent calls, exactly one winner.
 * Real PostgreSQL, Redlock over the shared Redis node. Each test works on its
 * own show so the tests do not see each other's holds.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { DEMO_CONCERTS } from "../../src/modules/concert/demo-catalog";
import { isSeatFree, listAvailableDates, listAvailableSeats } from "../../src/modules/concert/concert.service";
import { Seat } from "../../src/modules/concert/seat.entity";
import { cancelHold, holdSeat, insertHold, type HoldSeatInput, type HoldSeatOptions } from "../../src/modules/reservation/seat-hold.service";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { ManualClock } from "../../src/platform/clock";
import { errorReason } from "../../src/platform/errors";
import { createRedlockLocks, type Locks } from "../../src/platform/locks";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { testRedisUrl } from "../harness";
import { barrier, namespaced, openSeededDatabase, quietLog, sleep, tally, type SeededDatabase } from "./support";

const [IU, BTS, SVT, AKMU] = DEMO_CONCERTS;
const MAX_PER_USER = 2;

let s: SeededDatabase;
let redis: Redis[];
let locks: Locks;
const clock = new ManualClock();

beforeAll(async () => {
  s = await openSeededDatabase({ HOLD_MAX_PER_USER: String(MAX_PER_USER) });
  redis = await connectRedis([testRedisUrl()], quietLog);
  locks = namespaced(createRedlockLocks(redis, quietLog), `races-${randomBytes(4).toString("hex")}`);
  // Warm the ORM and the pool so the timed test measures holds, not start-up.
  const { reservation } = await hold({ userId: "warm-up", concertId: AKMU.id, date: AKMU.dates[2], seatNumber: 50 });
  await cancelHold(s.orm.em.fork(), clock, "warm-up", reservation.id);
});
// Every race ends with the invariant checker (a double hold is not a sale; the checker guards sales and money).
afterEach(async () => {
  expect(await checkInvariants(s.orm.em.fork())).toEqual([]);
});
afterAll(async () => {
  if (redis) await closeRedis(redis);
  await s?.close();
});

const hold = (input: HoldSeatInput, options?: HoldSeatOptions, hold = s.config.hold) => holdSeat(s.orm.em.fork(), locks, clock, hold, input, options);

/** Reservations the database says are live holds on a show, by seat number. */
async function liveHolds(concertId: string, date: string): Promise<Map<number, string[]>> {
  const rows = await s.orm.em.fork().execute<{ seat_number: number; user_id: string }[]>(
    `select s.seat_number, r.user_id from reservation r join seat s on s.id = r.seat_id join concert_date d on d.id = s.concert_date_id
     where d.concert_id = ? and d.date = ? and r.status = 'HELD' and r.hold_expires_at > ?`,
    [concertId, date, clock.now()],
  );
  const bySeat = new Map<number, string[]>();
  for (const r of rows) bySeat.set(r.seat_number, [...(bySeat.get(r.seat_number) ?? []), r.user_id]);
  return bySeat;
}

async function seatHolder(concertId: string, date: string, seatNumber: number): Promise<string | null> {
  const [row] = await s.orm.em
    .fork()
    .execute<{ held_by_reservation_id: string | null }[]>(
      `select s.held_by_reservation_id from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = ? and d.date = ? and s.seat_number = ?`,
      [concertId, date, seatNumber],
    );
  return row.held_by_reservation_id;
}

test("1,000 concurrent holds on one seat: exactly one winner, the rest refused cleanly", async () => {
  const seat = { concertId: IU.id, date: IU.dates[0], seatNumber: 1 };
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) => hold({ userId: `fan-${i}`, ...seat })));
  const ms = performance.now() - started;
  const t = tally(results);
  expect(t.errors).toEqual([]);
  expect(t.won).toHaveLength(1);
  expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 999 });
  expect(t.won[0].lock).toBe("acquired");
  expect([...(await liveHolds(seat.concertId, seat.date)).values()]).toEqual([[t.won[0].reservation.userId]]);
  expect(await seatHolder(seat.concertId, seat.date, 1)).toBe(t.won[0].reservation.id);
  process.stdout.write(`1,000 concurrent holds on one seat: ${ms.toFixed(0)} ms\n`);
});

test("200 users on 50 seats: 50 winners, no seat or user twice, the rest refused cleanly", async () => {
  const show = { concertId: IU.id, date: IU.dates[1] };
  const errors: unknown[] = [];
  const refusals: Record<string, number> = {};
  const wins: { userId: string; seatNumber: number }[] = [];
  // Every tenth user is greedy and tries for more seats than allowed.
  const user = async (i: number) => {
    const userId = `user-${i}`;
    const want = i % 10 === 0 ? MAX_PER_USER + 1 : 1;
    const preference = shuffle(Array.from({ length: 50 }, (_, n) => n + 1));
    let got = 0;
    let free = new Set(preference);
    while (got < want) {
      const next = preference.find((n) => free.has(n));
      if (next === undefined) return;
      try {
        await hold({ userId, ...show, seatNumber: next });
        wins.push({ userId, seatNumber: next });
        got++;
        free.delete(next);
      } catch (err) {
        const reason = errorReason(err) ?? "none";
        refusals[reason] = (refusals[reason] ?? 0) + 1;
        if (reason === "HOLD_LIMIT_REACHED") return;
        if (reason !== "SEAT_UNAVAILABLE") return void errors.push(err);
        free = new Set((await listAvailableSeats(s.orm.em.fork(), clock, show.concertId, show.date)).map((x) => x.seatNumber));
      }
    }
  };
  await Promise.all(Array.from({ length: 200 }, (_, i) => user(i)));

  expect(errors).toEqual([]);
  expect(Object.keys(refusals).filter((r) => r !== "SEAT_UNAVAILABLE" && r !== "HOLD_LIMIT_REACHED")).toEqual([]);
  expect(wins).toHaveLength(50);
  expect(new Set(wins.map((w) => w.seatNumber)).size).toBe(50);
  const perUser = count(wins.map((w) => w.userId));
  for (const [userId, n] of perUser) expect(n).toBeLessThanOrEqual(Number(userId.slice(5)) % 10 === 0 ? MAX_PER_USER : 1);
  const live = await liveHolds(show.concertId, show.date);
  expect(live.size).toBe(50);
  for (const holders of live.values()) expect(holders).toHaveLength(1);
  expect(await listAvailableSeats(s.orm.em.fork(), clock, show.concertId, show.date)).toEqual([]);
  expect((await listAvailableDates(s.orm.em.fork(), clock, show.concertId)).map((d) => d.date)).not.toContain(show.date);
});

test("with the lock switched off the database alone still keeps exactly one winner", async () => {
  const seat = { concertId: IU.id, date: IU.dates[2], seatNumber: 2 };
  const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => hold({ userId: `nolock-${i}`, ...seat }, { useLock: false })));
  const t = tally(results);
  expect(t.errors).toEqual([]);
  expect(t.won).toHaveLength(1);
  expect(t.won[0].lock).toBe("skipped");
  expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 199 });
  expect((await liveHolds(seat.concertId, seat.date)).get(2)).toHaveLength(1);
});

describe("the race the database guard closes (pretix style)", () => {
  /**
   * HoldSeat without its guard, written out here only to show the race: the
   * check and the write are separate statements, and `between` runs after
   * the check.
   */
  async function naiveHold(input: HoldSeatInput, between: () => Promise<void>): Promise<string> {
    const e = s.orm.em.fork();
    const [{ id: seatId }] = await e.execute<{ id: string }[]>(
      `select s.id from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = ? and d.date = ? and s.seat_number = ?`,
      [input.concertId, input.date, input.seatNumber],
    );
    return e.transactional(async (tx) => {
      const now = clock.now();
      const seat = await tx.findOneOrFail(Seat, Number(seatId), { refresh: true });
      if (!isSeatFree(seat, now)) throw new Error("SEAT_UNAVAILABLE");
      await between();
      const id = randomUUID();
      const holdExpiresAt = new Date(now.getTime() + s.config.hold.ttlMs);
      await tx.nativeUpdate(Seat, { id: seat.id }, { heldByReservationId: id, holdExpiresAt });
      await insertHold(tx, { id, userId: input.userId, seat, holdExpiresAt, now });
      return id;
    });
  }

  /**
   * No lease for anyone, and a pause until `n` callers have got this far:
   * HoldSeat asks for the seat lease after it found the seat free and before
   * its transaction writes, so every caller has checked before any writes.
   */
  const pausingNoLocks = (bothChecked: () => Promise<void>): Locks => ({
    kind: "local",
    tryAcquire: async () => {
      await bothChecked();
      return "unavailable";
    },
  });

  test("without the guard (and without the lock) two holds of one seat both succeed", async () => {
    const seat = { concertId: BTS.id, date: BTS.dates[0], seatNumber: 3 };
    const bothChecked = barrier(2);
    const results = await Promise.allSettled([naiveHold({ userId: "racer-a", ...seat }, bothChecked), naiveHold({ userId: "racer-b", ...seat }, bothChecked)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(2); // a double booking: this is what the guard exists for
    expect((await liveHolds(seat.concertId, seat.date)).get(3)?.sort()).toEqual(["racer-a", "racer-b"]);
  });

  test("with the guard the same interleaving has exactly one winner", async () => {
    const seat = { concertId: BTS.id, date: BTS.dates[1], seatNumber: 3 };
    const bothChecked = barrier(2);
    const racer = (userId: string) => holdSeat(s.orm.em.fork(), pausingNoLocks(bothChecked), clock, s.config.hold, { userId, ...seat });
    const t = tally(await Promise.allSettled([racer("racer-a"), racer("racer-b")]));
    expect(t.won).toHaveLength(1);
    expect(t.refused).toEqual({ SEAT_UNAVAILABLE: 1 });
    expect((await liveHolds(seat.concertId, seat.date)).get(3)).toHaveLength(1);
  });
});

test("a holder whose lease ran out cannot overwrite the newer hold", async () => {
  const seat = { concertId: SVT.id, date: SVT.dates[0], seatNumber: 4 };
  const tinyLease = { ...s.config.hold, lockTtlMs: 50 };
  let leaseTaken!: () => void;
  let wakeUp!: () => void;
  const taken = new Promise<void>((r) => (leaseTaken = r));
  const stalled = new Promise<void>((r) => (wakeUp = r));
  // The slow holder's lock client hands the lease over only after a stall
  // longer than the lease: a process paused between lock and write.
  const stallingLocks: Locks = {
    kind: locks.kind,
    async tryAcquire(key, ttlMs) {
      const got = await locks.tryAcquire(key, ttlMs);
      leaseTaken();
      await stalled;
      return got;
    },
  };
  const slow = holdSeat(s.orm.em.fork(), stallingLocks, clock, tinyLease, { userId: "slow", ...seat });
  const slowOutcome = slow.then(
    () => "won",
    (err) => errorReason(err),
  );
  await taken;
  await sleep(120); // the lease is gone; the slow holder does not know
  const fast = await hold({ userId: "fast", ...seat }, {}, tinyLease);
  expect(fast.lock).toBe("acquired"); // the lock was free again
  wakeUp();
  expect(await slowOutcome).toBe("SEAT_UNAVAILABLE");
  expect(await seatHolder(seat.concertId, seat.date, 4)).toBe(fast.reservation.id);
  expect((await liveHolds(seat.concertId, seat.date)).get(4)).toEqual(["fast"]);
});

test("HOLD_MAX_PER_USER holds under concurrency, even without the lock", async () => {
  const show = { concertId: AKMU.id, date: AKMU.dates[0] };
  for (const useLock of [true, false]) {
    const userId = `greedy-${useLock}`;
    const seats = Array.from({ length: 20 }, (_, i) => i + 1 + (useLock ? 0 : 20));
    const t = tally(await Promise.allSettled(seats.map((seatNumber) => hold({ userId, ...show, seatNumber }, { useLock }))));
    expect(t.errors).toEqual([]);
    expect(t.won).toHaveLength(MAX_PER_USER);
    expect(t.refused).toEqual({ HOLD_LIMIT_REACHED: 20 - MAX_PER_USER });
  }
});

describe("one idempotency key, many concurrent calls (a client retrying before the first answer came)", () => {
  /** Redis down: no lease can be had, the database decides alone. */
  const down: Locks = { kind: "redlock", tryAcquire: async () => "unavailable" };

  test.each([
    ["the key lease", () => locks],
    ["the database alone", () => down],
  ])("same seat, with %s: one hold, and every call answers it", async (_name, lockWith) => {
    const seat = { concertId: SVT.id, date: SVT.dates[1], seatNumber: lockWith() === down ? 6 : 5 };
    const userId = `twin-${seat.seatNumber}`;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => holdSeat(s.orm.em.fork(), lockWith(), clock, s.config.hold, { userId, ...seat, idempotencyKey: "twin" })),
    );
    const t = tally(results);
    expect(t.errors).toEqual([]);
    expect(t.refused).toEqual({});
    const ids = new Set(t.won.map((r) => r.reservation.id));
    expect(ids.size).toBe(1);
    expect(t.won.filter((r) => !r.existing)).toHaveLength(1);
    expect((await liveHolds(seat.concertId, seat.date)).get(seat.seatNumber)).toEqual([userId]);
    expect(await seatHolder(seat.concertId, seat.date, seat.seatNumber)).toBe([...ids][0]);
  });

  test.each([
    ["the key lease", () => locks],
    ["the database alone (the unique key index)", () => down],
  ])("different seats, with %s: one hold, the rest IDEMPOTENCY_KEY_REUSED", async (_name, lockWith) => {
    const date = lockWith() === down ? BTS.dates[3] : BTS.dates[2];
    const userId = `greedy-key-${date}`;
    const seats = Array.from({ length: 10 }, (_, i) => 11 + i);
    const t = tally(
      await Promise.allSettled(
        seats.map((seatNumber) =>
          holdSeat(s.orm.em.fork(), lockWith(), clock, s.config.hold, { userId, concertId: BTS.id, date, seatNumber, idempotencyKey: "one-key" }),
        ),
      ),
    );
    expect(t.errors).toEqual([]);
    expect(t.won).toHaveLength(1);
    expect(t.refused).toEqual({ IDEMPOTENCY_KEY_REUSED: seats.length - 1 });
    const live = await liveHolds(BTS.id, date);
    expect([...live.values()].flat().filter((u) => u === userId)).toHaveLength(1);
  });
});

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

function count<T>(xs: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}
