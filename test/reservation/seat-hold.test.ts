import { Code } from "@connectrpc/connect";
import { Reservation } from "../../src/modules/reservation/reservation.entity";
import { getReservation, listReservations } from "../../src/modules/reservation/reservation.service";
import { cancelHold, expireStaleHolds, holdSeat } from "../../src/modules/reservation/seat-hold.service";
import { Seat } from "../../src/modules/concert/seat.entity";
import { ManualClock } from "../../src/platform/clock";
import { createLocalLocks } from "../../src/platform/locks";
import { CONCERT, DATE, OTHER_DATE, openSeededDatabase, type SeededDatabase, rejection } from "./support";

let s: SeededDatabase;
const clock = new ManualClock();
const locks = createLocalLocks(() => clock.now().getTime());
beforeAll(async () => {
  s = await openSeededDatabase({ HOLD_TTL: "5m", HOLD_MAX_PER_USER: "2" });
});
afterAll(() => s?.close());

const em = () => s.orm.em.fork();
const hold = (userId: string, seatNumber: number, date = DATE) =>
  holdSeat(em(), locks, clock, s.config.hold, { userId, concertId: CONCERT, date, seatNumber }).then((r) => r.reservation);

const refusal = (code: Code, reason: string) => ({ code, reason });

async function seatRow(seatNumber: number, date = DATE) {
  return em().findOneOrFail(Seat, { concertDate: { concert: CONCERT, date }, seatNumber });
}

test("a hold answers the server's price and an expiry HOLD_TTL away, and claims the seat row", async () => {
  const before = await seatRow(3);
  const r = await hold("alice", 3);
  expect(r).toMatchObject({ userId: "alice", concertId: CONCERT, date: DATE, seatNumber: 3, amount: 165_000, status: "HELD" });
  expect(r.holdExpiresAt.getTime() - clock.now().getTime()).toBe(5 * 60_000);
  const after = await seatRow(3);
  expect(after).toMatchObject({ heldByReservationId: r.id, soldReservationId: null, version: before.version + 1 });
  expect(await getReservation(em(), clock, r.id)).toEqual({ ...r, confirmedAt: undefined });
  await cancelHold(em(), clock, "alice", r.id);
});

test("a held seat is refused to everyone else; its holder gets the same hold back and writes nothing", async () => {
  const mine = await hold("alice", 4);
  const seat = await seatRow(4);
  expect(await rejection(hold("bob", 4))).toEqual(refusal(Code.FailedPrecondition, "SEAT_UNAVAILABLE"));
  expect(await hold("alice", 4)).toEqual({ ...mine, confirmedAt: undefined });
  const again = await holdSeat(em(), locks, clock, s.config.hold, { userId: "alice", concertId: CONCERT, date: DATE, seatNumber: 4, idempotencyKey: "k-4" });
  expect(again).toMatchObject({ existing: true, reservation: { id: mine.id } });
  expect(await seatRow(4)).toMatchObject({ heldByReservationId: mine.id, version: seat.version });
  expect(await em().count(Reservation, { userId: "alice", seat: seat.id })).toBe(1);
});

test("a keyed hold: the retry gets the first hold as it stands now, the key names one seat", async () => {
  const keyed = (seatNumber: number, idempotencyKey: string, date = DATE) =>
    holdSeat(em(), locks, clock, s.config.hold, { userId: "kim", concertId: CONCERT, date, seatNumber, idempotencyKey });
  const first = await keyed(40, "order-40");
  expect(first.existing).toBe(false);
  expect((await em().findOneOrFail(Reservation, first.reservation.id)).idempotencyKey).toBe("order-40");
  expect(await keyed(40, "order-40")).toEqual({ reservation: { ...first.reservation, confirmedAt: undefined }, lock: "skipped", existing: true });
  expect(await rejection(keyed(41, "order-40"))).toEqual(refusal(Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"));
  expect(await rejection(keyed(40, "order-40", OTHER_DATE))).toEqual(refusal(Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"));
  // Keys are per user: another user's identical key is theirs.
  await holdSeat(em(), locks, clock, s.config.hold, { userId: "lee", concertId: CONCERT, date: DATE, seatNumber: 41, idempotencyKey: "order-40" });

  await cancelHold(em(), clock, "kim", first.reservation.id);
  expect((await keyed(40, "order-40")).reservation).toMatchObject({ id: first.reservation.id, status: "CANCELLED" });
  expect((await seatRow(40)).heldByReservationId).toBeNull(); // the retry took no seat

  const lapsing = await keyed(42, "order-42");
  clock.advance(5 * 60_000);
  expect((await keyed(42, "order-42")).reservation).toMatchObject({ id: lapsing.reservation.id, status: "EXPIRED" });
  expect((await seatRow(42)).heldByReservationId).toBe(lapsing.reservation.id); // a stale claim, free to anyone
  expect((await hold("mia", 42)).status).toBe("HELD");
});

test("a seat lease left by a dead instance refuses a new hold but not a keyed retry: the database guard decides", async () => {
  const seat = await seatRow(44);
  // The first attempt's instance took the lease and died before committing.
  expect(await locks.tryAcquire(`seat:${seat.id}`, s.config.hold.lockTtlMs)).not.toBe("busy");
  expect(await rejection(hold("nora", 44))).toEqual(refusal(Code.FailedPrecondition, "SEAT_UNAVAILABLE"));
  const retry = await holdSeat(em(), locks, clock, s.config.hold, { userId: "nora", concertId: CONCERT, date: DATE, seatNumber: 44, idempotencyKey: "n-44" });
  expect(retry).toMatchObject({ lock: "contended", existing: false, reservation: { userId: "nora", seatNumber: 44, status: "HELD" } });
  // And the guard still says no to anyone else, keyed or not.
  const other = holdSeat(em(), locks, clock, s.config.hold, { userId: "otto", concertId: CONCERT, date: DATE, seatNumber: 44, idempotencyKey: "o-44" });
  expect(await rejection(other)).toEqual(refusal(Code.FailedPrecondition, "SEAT_UNAVAILABLE"));
  await cancelHold(em(), clock, "nora", retry.reservation.id);
});

test("after HOLD_TTL another user can hold the seat, and the old holder can no longer cancel", async () => {
  const old = await hold("carol", 5);
  clock.advance(5 * 60_000 - 1);
  expect(await rejection(hold("dave", 5))).toEqual(refusal(Code.FailedPrecondition, "SEAT_UNAVAILABLE"));
  clock.advance(1);
  const fresh = await hold("dave", 5);
  expect((await seatRow(5)).heldByReservationId).toBe(fresh.id);
  expect(await rejection(cancelHold(em(), clock, "carol", old.id))).toEqual(refusal(Code.FailedPrecondition, "HOLD_EXPIRED"));
  // No sweeper ran: reads still say EXPIRED.
  expect((await getReservation(em(), clock, old.id)).status).toBe("EXPIRED");
  expect((await em().findOneOrFail(Reservation, old.id)).status).toBe("HELD");
  expect((await getReservation(em(), clock, fresh.id)).status).toBe("HELD");
});

test("cancel: only the holder, frees the seat at once, and only once", async () => {
  const r = await hold("erin", 6);
  expect(await rejection(cancelHold(em(), clock, "mallory", r.id))).toEqual(refusal(Code.NotFound, "RESERVATION_NOT_FOUND"));
  expect(await rejection(cancelHold(em(), clock, "erin", "00000000-0000-4000-8000-000000000000"))).toEqual(refusal(Code.NotFound, "RESERVATION_NOT_FOUND"));
  const cancelled = await cancelHold(em(), clock, "erin", r.id);
  expect(cancelled).toMatchObject({ id: r.id, status: "CANCELLED", seatNumber: 6, concertId: CONCERT, date: DATE });
  expect(await seatRow(6)).toMatchObject({ heldByReservationId: null, holdExpiresAt: null });
  expect(await rejection(cancelHold(em(), clock, "erin", r.id))).toEqual(refusal(Code.FailedPrecondition, "RESERVATION_NOT_HELD"));
  const again = await hold("frank", 6); // free at once, no waiting for the old expiry
  expect(again.status).toBe("HELD");
});

test("a confirmed reservation cannot be cancelled", async () => {
  const r = await hold("gina", 10);
  await em().execute(`update reservation set status = 'CONFIRMED', confirmed_at = ? where id = ?`, [clock.now(), r.id]);
  expect(await rejection(cancelHold(em(), clock, "gina", r.id))).toEqual(refusal(Code.FailedPrecondition, "RESERVATION_NOT_HELD"));
});

test("HOLD_MAX_PER_USER counts live holds only", async () => {
  const a = await hold("henry", 11);
  await hold("henry", 12);
  expect(await rejection(hold("henry", 13))).toEqual(refusal(Code.FailedPrecondition, "HOLD_LIMIT_REACHED"));
  await cancelHold(em(), clock, "henry", a.id);
  await hold("henry", 13);
  clock.advance(5 * 60_000); // both lapse
  await hold("henry", 14);
  await hold("henry", 15);
});

test("ListReservations: the user's own, newest first, with the status at the clock's time", async () => {
  const first = await hold("iris", 20, OTHER_DATE);
  clock.advance(1000);
  const second = await hold("iris", 21, OTHER_DATE);
  await cancelHold(em(), clock, "iris", second.id);
  clock.advance(1000);
  const third = await hold("iris", 22, OTHER_DATE);
  await hold("jack", 23, OTHER_DATE);
  let list = (await listReservations(em(), clock, "iris", 0, "")).reservations;
  expect(list.map((r) => [r.id, r.status])).toEqual([
    [third.id, "HELD"],
    [second.id, "CANCELLED"],
    [first.id, "HELD"],
  ]);
  expect(list[0]).toMatchObject({ date: OTHER_DATE, seatNumber: 22, amount: 143_000 });
  clock.advance(5 * 60_000);
  list = (await listReservations(em(), clock, "iris", 0, "")).reservations;
  expect(list.map((r) => r.status)).toEqual(["EXPIRED", "CANCELLED", "EXPIRED"]);
  expect(await listReservations(em(), clock, "nobody", 0, "")).toEqual({ reservations: [], nextPageToken: "" });
  expect(await rejection(getReservation(em(), clock, "00000000-0000-4000-8000-000000000000"))).toEqual(refusal(Code.NotFound, "RESERVATION_NOT_FOUND"));
});

test("the sweeper tidies expired holds and frees only seats nobody re-held", async () => {
  clock.advance(5 * 60_000); // everything held so far has lapsed
  await expireStaleHolds(em(), clock); // start from a tidy table
  const lapsed = await hold("kate", 30);
  const reheld = await hold("kate", 31);
  clock.advance(5 * 60_000);
  const newer = await hold("liam", 31);
  const live = await hold("liam", 32);

  expect(await expireStaleHolds(em(), clock)).toEqual({ expired: 2, seatsFreed: 1 });
  expect((await em().findOneOrFail(Reservation, lapsed.id)).status).toBe("EXPIRED");
  expect((await em().findOneOrFail(Reservation, reheld.id)).status).toBe("EXPIRED");
  expect((await em().findOneOrFail(Reservation, live.id)).status).toBe("HELD");
  expect(await seatRow(30)).toMatchObject({ heldByReservationId: null, holdExpiresAt: null });
  expect((await seatRow(31)).heldByReservationId).toBe(newer.id);
  expect(await expireStaleHolds(em(), clock)).toEqual({ expired: 0, seatsFreed: 0 });
});
