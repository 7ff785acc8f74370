/**
 * ListAvailableSeats over the real server: free seats in `seats` (FREE), held
 * and sold ones in `taken_seats`, after a hold and a payment; a lapsed hold is
 * free again by the clock alone.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SeatState } from "../../gen/boxoffice/concert/v1/concert_pb";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { SEATS_PER_SHOW, demoSeatPrice } from "../../src/modules/concert/demo-catalog";
import { ManualClock } from "../../src/platform/clock";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";
const HOLD_TTL_MS = 60_000;

let db: TestDatabase;
let s: TestServer;
const clock = new ManualClock();

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true", HOLD_TTL: `${HOLD_TTL_MS}ms` }, { clock, startQueue: false });
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

test("free, held and sold seats, each with its state, and every seat exactly once", async () => {
  const transport = createGrpcTransport({ baseUrl: s.baseUrl });
  const queue = createClient(QueueService, transport);
  const concerts = createClient(ConcertService, transport);
  const reservations = createClient(ReservationService, transport);
  const wallet = createClient(WalletService, transport);
  const admitted = async (userId: string) => {
    const { ticket } = await queue.issueToken({ userId });
    await s.deps.queue.tick();
    return { "x-queue-token": ticket!.token };
  };
  const seatsNow = async (userId: string) => concerts.listAvailableSeats({ concertId: CONCERT, date: DATE }, { headers: await admitted(userId) });

  const fresh = await seatsNow("viewer-1");
  expect(fresh.seats).toHaveLength(SEATS_PER_SHOW);
  expect(fresh.seats.every((x) => x.state === SeatState.FREE)).toBe(true);
  expect(fresh.takenSeats).toEqual([]);

  const buyer = await admitted("buyer");
  const { reservation: bought } = await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 7 }, { headers: buyer });
  await wallet.chargeBalance({ userId: "buyer", amount: 200_000n, idempotencyKey: "topup" });
  await reservations.payReservation({ reservationId: bought!.reservationId, idempotencyKey: "pay" }, { headers: buyer });
  const holder = await admitted("holder");
  await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 12 }, { headers: holder });

  const after = await seatsNow("viewer-2");
  expect(after.takenSeats.map((x) => [x.seatNumber, x.state, x.price])).toEqual([
    [7, SeatState.SOLD, BigInt(demoSeatPrice(7))],
    [12, SeatState.HELD, BigInt(demoSeatPrice(12))],
  ]);
  expect(after.seats).toHaveLength(SEATS_PER_SHOW - 2);
  expect(after.seats.every((x) => x.state === SeatState.FREE)).toBe(true);
  const numbers = [...after.seats, ...after.takenSeats].map((x) => x.seatNumber).sort((a, b) => a - b);
  expect(numbers).toEqual(Array.from({ length: SEATS_PER_SHOW }, (_, i) => i + 1));

  // No sweeper has run: the lapsed hold is free by the clock; the sale stays.
  clock.advance(HOLD_TTL_MS);
  const lapsed = await seatsNow("viewer-3");
  expect(lapsed.takenSeats.map((x) => [x.seatNumber, x.state])).toEqual([[7, SeatState.SOLD]]);
  expect(lapsed.seats.find((x) => x.seatNumber === 12)?.state).toBe(SeatState.FREE);
});
