import { Code } from "@connectrpc/connect";
import { listAvailableDates, listAvailableSeats } from "../../src/modules/concert/concert.service";
import { SEATS_PER_SHOW } from "../../src/modules/concert/demo-catalog";
import { cancelHold, holdSeat } from "../../src/modules/reservation/seat-hold.service";
import { ManualClock } from "../../src/platform/clock";
import { createLocalLocks } from "../../src/platform/locks";
import { CONCERT, DATE, OTHER_DATE, openSeededDatabase, type SeededDatabase, rejection } from "../reservation/support";

let s: SeededDatabase;
const clock = new ManualClock();
const locks = createLocalLocks(() => clock.now().getTime());
beforeAll(async () => {
  s = await openSeededDatabase();
});
afterAll(() => s?.close());

const em = () => s.orm.em.fork();
const hold = (userId: string, seatNumber: number, date = DATE) =>
  holdSeat(em(), locks, clock, s.config.hold, { userId, concertId: CONCERT, date, seatNumber }, { useLock: false });
const seatsOf = async (date = DATE) => (await listAvailableSeats(em(), clock, CONCERT, date)).map((x) => x.seatNumber);
const countOf = async (date: string) => (await listAvailableDates(em(), clock, CONCERT)).find((d) => d.date === date)?.availableSeats;

test("a fresh show lists every seat with its price, and every date with full counts", async () => {
  const seats = await listAvailableSeats(em(), clock, CONCERT, DATE);
  expect(seats).toHaveLength(SEATS_PER_SHOW);
  expect(seats[0]).toEqual({ seatNumber: 1, price: 165_000 });
  expect(seats[49]).toEqual({ seatNumber: 50, price: 121_000 });
  const dates = await listAvailableDates(em(), clock, CONCERT);
  expect(dates.map((d) => d.date)).toEqual([DATE, OTHER_DATE, "2027-03-13"]);
  expect(dates[0]).toMatchObject({ concertId: CONCERT, availableSeats: 50, totalSeats: 50 });
  expect(dates[0].startsAt.toISOString()).toBe("2027-03-06T10:00:00.000Z");
});

test("a held seat leaves the list and the date's count until its hold ends", async () => {
  const { reservation } = await hold("alice", 7);
  expect(await seatsOf()).not.toContain(7);
  expect(await countOf(DATE)).toBe(49);
  expect(await countOf(OTHER_DATE)).toBe(50);

  await cancelHold(em(), clock, "alice", reservation.id);
  expect(await seatsOf()).toContain(7);
  expect(await countOf(DATE)).toBe(50);

  await hold("alice", 8);
  clock.advance(s.config.hold.ttlMs - 1);
  expect(await seatsOf()).not.toContain(8);
  clock.advance(1); // an expired hold is no hold, sweeper or not
  expect(await seatsOf()).toContain(8);
  expect(await countOf(DATE)).toBe(50);
});

test("a sold seat leaves the list and the count for good", async () => {
  const { reservation } = await hold("bob", 9, OTHER_DATE);
  // What a payment does: confirm the reservation, mark the seat sold.
  await em().execute(`update reservation set status = 'CONFIRMED', confirmed_at = ? where id = ?`, [clock.now(), reservation.id]);
  await em().execute(
    `update seat set sold_reservation_id = held_by_reservation_id, held_by_reservation_id = null, hold_expires_at = null where held_by_reservation_id = ?`,
    [reservation.id],
  );
  clock.advance(s.config.hold.ttlMs * 10);
  expect(await seatsOf(OTHER_DATE)).not.toContain(9);
  expect(await countOf(OTHER_DATE)).toBe(49);
});

test("a date with no free seat is not listed", async () => {
  await em().execute(
    `update seat set held_by_reservation_id = gen_random_uuid(), hold_expires_at = ?
     where concert_date_id = (select id from concert_date where concert_id = ? and date = '2027-03-13')`,
    [new Date(clock.now().getTime() + 60_000), CONCERT],
  );
  expect((await listAvailableDates(em(), clock, CONCERT)).map((d) => d.date)).not.toContain("2027-03-13");
  expect(await seatsOf("2027-03-13")).toEqual([]);
});

test("unknown concert or date is NOT_FOUND with a reason", async () => {
  expect(await rejection(listAvailableDates(em(), clock, "no-such-concert"))).toEqual({ code: Code.NotFound, reason: "CONCERT_NOT_FOUND" });
  expect(await rejection(listAvailableSeats(em(), clock, CONCERT, "2027-01-01"))).toEqual({ code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" });
  expect(await rejection(listAvailableSeats(em(), clock, "no-such-concert", DATE))).toEqual({ code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" });
  expect(await rejection(hold("carol", 1, "2027-01-01"))).toEqual({ code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" });
  // Well-formed but not a day: no show, not a database error.
  expect(await rejection(listAvailableSeats(em(), clock, CONCERT, "2027-02-30"))).toEqual({ code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" });
  expect(await rejection(hold("carol", 1, "2027-02-30"))).toEqual({ code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" });
});
