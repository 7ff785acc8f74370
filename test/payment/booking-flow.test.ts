/**
 * The seed's seven APIs end to end over the real server: queue, dates, seats,
 * hold, charge, balance, pay; then the spent token is refused by the gate.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";

let db: TestDatabase;
let s: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer(
    {
      DATABASE_URL: db.url,
      REDIS_URLS: testRedisUrl(),
      QUEUE_REDIS_PREFIX: `flow:${randomBytes(4).toString("hex")}:`,
      SEED_DEMO_CATALOG: "true",
      METRICS_PORT: "0",
    },
    { startQueue: false },
  );
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

/** Prometheus metrics, from the loopback metrics port (the public port has none). */
const scrape = async () => (await fetch(`http://127.0.0.1:${s.server.metricsPort}/metrics`)).text();

test("queue, browse, hold, charge, pay; the token is then spent", async () => {
  const transport = createGrpcTransport({ baseUrl: s.baseUrl });
  const queue = createClient(QueueService, transport);
  const concerts = createClient(ConcertService, transport);
  const reservations = createClient(ReservationService, transport);
  const wallet = createClient(WalletService, transport);

  const { ticket } = await queue.issueToken({ userId: "fan-1" });
  await s.deps.queue.tick();
  expect((await queue.getQueueStatus({ token: ticket!.token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  const headers = { "x-queue-token": ticket!.token };

  const concertId = "iu-golden-hour-2027";
  const { dates } = await concerts.listAvailableDates({ concertId }, { headers });
  expect(dates.map((d) => d.date)).toEqual(["2027-03-06", "2027-03-07", "2027-03-13"]);
  expect(dates[0]).toMatchObject({ availableSeats: 50, totalSeats: 50 });
  const { seats } = await concerts.listAvailableSeats({ concertId, date: "2027-03-06" }, { headers });
  expect(seats).toHaveLength(50);
  const seat = seats.find((x) => x.seatNumber === 7)!;

  const { reservation } = await reservations.holdSeat({ concertId, date: "2027-03-06", seatNumber: 7 }, { headers });
  // The acting user comes from the token, not from anything in the request.
  expect(reservation).toMatchObject({ userId: "fan-1", seatNumber: 7, amount: seat.price, status: ReservationStatus.HELD });
  expect((await concerts.listAvailableSeats({ concertId, date: "2027-03-06" }, { headers })).seats.map((x) => x.seatNumber)).not.toContain(7);

  const short = await reservations.payReservation({ reservationId: reservation!.reservationId }, { headers }).catch((e) => ConnectError.from(e));
  expect((short as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("INSUFFICIENT_BALANCE");

  expect((await wallet.getBalance({ userId: "fan-1" })).balance).toBe(0n);
  await wallet.chargeBalance({ userId: "fan-1", amount: 200_000n, idempotencyKey: "first-topup" });
  const paid = await reservations.payReservation({ reservationId: reservation!.reservationId, idempotencyKey: "pay-1" }, { headers });
  expect(paid.reservation?.status).toBe(ReservationStatus.CONFIRMED);
  expect(paid.payment?.amount).toBe(seat.price);
  expect(paid.balance).toBe(200_000n - seat.price);
  expect((await wallet.getBalance({ userId: "fan-1" })).balance).toBe(200_000n - seat.price);

  // Payment expired the token: the gate now refuses it, before any work...
  expect((await queue.getQueueStatus({ token: ticket!.token })).ticket?.status).toBe(QueueStatus.EXPIRED);
  for (const idempotencyKey of ["", "pay-2"]) {
    const spent = await reservations
      .payReservation({ reservationId: reservation!.reservationId, idempotencyKey }, { headers })
      .catch((e) => ConnectError.from(e));
    expect((spent as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((spent as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("QUEUE_TOKEN_EXPIRED");
  }
  // ...except for the retry of the payment that spent it (its answer may have been lost): the first result, again.
  expect(await reservations.payReservation({ reservationId: reservation!.reservationId, idempotencyKey: "pay-1" }, { headers })).toEqual(paid);
  expect((await wallet.getBalance({ userId: "fan-1" })).balance).toBe(200_000n - seat.price);

  const mine = await reservations.listReservations({ userId: "fan-1" });
  expect(mine.reservations.map((r) => r.status)).toEqual([ReservationStatus.CONFIRMED]);
  const entries = await wallet.listWalletEntries({ userId: "fan-1" });
  expect(entries.entries.map((e) => e.amount)).toEqual([-seat.price, 200_000n]);
  expect(await checkInvariants(s.deps.orm.em.fork())).toEqual([]);

  // The domain metrics saw it all.
  const metrics = await scrape();
  expect(metrics).toMatch(/^holds_granted_total 1$/m);
  expect(metrics).toMatch(/^hold_locks_total\{outcome="acquired"\} 1$/m);
  expect(metrics).toMatch(/^seats_held 0$/m);
  expect(metrics).toMatch(/^queue_expiries_total\{reason="payment"\} 1$/m);
  expect(metrics).toMatch(/^queue_admissions_total 1$/m);
});

test("a refused hold is counted by reason, and a live hold shows in seats_held", async () => {
  const queue = createClient(QueueService, createGrpcTransport({ baseUrl: s.baseUrl }));
  const reservations = createClient(ReservationService, createGrpcTransport({ baseUrl: s.baseUrl }));
  const tokens = [];
  for (const userId of ["fan-2", "fan-3"]) tokens.push((await queue.issueToken({ userId })).ticket!.token);
  await s.deps.queue.tick();
  const req = { concertId: "akmu-lovelee-2027", date: "2027-06-05", seatNumber: 1 };
  await reservations.holdSeat(req, { headers: { "x-queue-token": tokens[0] } });
  await expect(reservations.holdSeat(req, { headers: { "x-queue-token": tokens[1] } })).rejects.toMatchObject({ code: Code.FailedPrecondition });
  const metrics = await scrape();
  expect(metrics).toMatch(/^holds_refused_total\{reason="SEAT_UNAVAILABLE"\} 1$/m);
  expect(metrics).toMatch(/^seats_held 1$/m);
});
