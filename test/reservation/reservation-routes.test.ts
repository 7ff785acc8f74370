/**
 * The handlers in memory (createRouterTransport) with the validation and
 * error interceptors and a stand-in for the queue-token gate that puts the
 * caller in the context: proto mapping, the acting user, bad input.
 */
import { Code, createClient } from "@connectrpc/connect";
import { createRouterTransport } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { registerConcertRoutes } from "../../src/modules/concert/concert.routes";
import { registerReservationRoutes } from "../../src/modules/reservation/reservation.routes";
import { createPayReservationHandler } from "../../src/modules/payment/payment.routes";
import { ManualClock } from "../../src/platform/clock";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { asUser, CONCERT, DATE, fakeGate, openSeededDatabase, quietLog, routeDeps, type SeededDatabase, rejection } from "./support";

let s: SeededDatabase;
const clock = new ManualClock();

let reservations: ReturnType<typeof createClient<typeof ReservationService>>;
let concerts: ReturnType<typeof createClient<typeof ConcertService>>;

beforeAll(async () => {
  s = await openSeededDatabase();
  const deps = routeDeps(s, clock);
  const transport = createRouterTransport(
    (router) => {
      registerConcertRoutes(router, deps);
      registerReservationRoutes(router, deps, createPayReservationHandler(deps));
    },
    { router: { interceptors: [createErrorInterceptor(quietLog), fakeGate, createValidateInterceptor()] } },
  );
  reservations = createClient(ReservationService, transport);
  concerts = createClient(ConcertService, transport);
});
afterAll(() => s?.close());

test("HoldSeat maps the hold to the proto: server price as int64, expiry, status", async () => {
  const { reservation } = await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 12 }, asUser("alice"));
  expect(reservation).toMatchObject({ userId: "alice", concertId: CONCERT, date: DATE, seatNumber: 12, amount: 143_000n, status: ReservationStatus.HELD });
  expect(timestampDate(reservation!.holdExpiresAt!).getTime()).toBe(clock.now().getTime() + s.config.hold.ttlMs);
  expect(timestampDate(reservation!.createdAt!).getTime()).toBe(clock.now().getTime());
  expect(reservation!.confirmedAt).toBeUndefined();

  const got = await reservations.getReservation({ reservationId: reservation!.reservationId }, asUser("alice"));
  expect(got.reservation).toEqual(reservation);
  expect((await reservations.listReservations({ userId: "alice" }, asUser("alice"))).reservations).toEqual([reservation]);
  expect(await rejection(reservations.getReservation({ reservationId: reservation!.reservationId }, asUser("bob")))).toEqual({
    code: Code.NotFound,
    reason: "RESERVATION_NOT_FOUND",
  });

  const seats = await concerts.listAvailableSeats({ concertId: CONCERT, date: DATE }, asUser("alice"));
  expect(seats.seats.map((x) => x.seatNumber)).not.toContain(12);
  expect(seats.seats[0]).toMatchObject({ seatNumber: 1, price: 165_000n });
  const dates = await concerts.listAvailableDates({ concertId: CONCERT }, asUser("alice"));
  expect(dates.dates[0]).toMatchObject({ concertId: CONCERT, date: DATE, availableSeats: 49, totalSeats: 50 });
});

test("CancelHold acts for the caller only", async () => {
  const { reservation } = await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 13 }, asUser("carol"));
  const id = reservation!.reservationId;
  expect(await rejection(reservations.cancelHold({ reservationId: id }, asUser("mallory")))).toEqual({ code: Code.NotFound, reason: "RESERVATION_NOT_FOUND" });
  const { reservation: cancelled } = await reservations.cancelHold({ reservationId: id }, asUser("carol"));
  expect(cancelled?.status).toBe(ReservationStatus.CANCELLED);
  expect(await rejection(reservations.cancelHold({ reservationId: id }, asUser("carol")))).toEqual({
    code: Code.FailedPrecondition,
    reason: "RESERVATION_NOT_HELD",
  });
});

test("seat 0 and 51 are INVALID_ARGUMENT and change nothing; no caller is UNAUTHENTICATED", async () => {
  for (const seatNumber of [0, 51]) {
    expect((await rejection(reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber }, asUser("dave")))).code).toBe(Code.InvalidArgument);
  }
  expect((await rejection(reservations.holdSeat({ concertId: CONCERT, date: "2027-3-6", seatNumber: 1 }, asUser("dave")))).code).toBe(Code.InvalidArgument);
  expect((await rejection(reservations.cancelHold({ reservationId: "not-a-uuid" }, asUser("dave")))).code).toBe(Code.InvalidArgument);
  expect((await reservations.listReservations({ userId: "dave" }, asUser("dave"))).reservations).toEqual([]);
  expect((await rejection(reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 1 }))).code).toBe(Code.Unauthenticated);
  expect((await rejection(reservations.cancelHold({ reservationId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.Unauthenticated);
});

test("a taken seat and an unknown show come back with their reasons", async () => {
  await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 14 }, asUser("erin"));
  expect(await rejection(reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 14 }, asUser("frank")))).toEqual({
    code: Code.FailedPrecondition,
    reason: "SEAT_UNAVAILABLE",
  });
  expect(await rejection(reservations.holdSeat({ concertId: CONCERT, date: "2027-02-30", seatNumber: 1 }, asUser("frank")))).toEqual({
    code: Code.NotFound,
    reason: "CONCERT_DATE_NOT_FOUND",
  });
  expect(await rejection(concerts.listAvailableDates({ concertId: "nope" }, asUser("frank")))).toEqual({ code: Code.NotFound, reason: "CONCERT_NOT_FOUND" });
});
