/**
 * The seed's booking flow as a client runs it, over any transport and in
 * either authentication mode, for the suites that compare them.
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import type { TestServer } from "../harness";

/** gRPC (HTTP/2) and Connect JSON over HTTP/1.1, the two ways clients arrive. */
export function transportsFor(baseUrl: string): Record<string, () => Transport> {
  return {
    gRPC: () => createGrpcTransport({ baseUrl }),
    "Connect (HTTP/1.1)": () => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  };
}

/** The transport with `authorization: Bearer <jwt>` on every call (nothing added without a jwt). */
export function withBearer(transport: Transport, jwt?: string): Transport {
  const headers = (given: ConstructorParameters<typeof Headers>[0]) => {
    const h = new Headers(given);
    if (jwt) h.set("authorization", `Bearer ${jwt}`);
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) => transport.unary(method, signal, timeoutMs, headers(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) => transport.stream(method, signal, timeoutMs, headers(header), input, contextValues),
  };
}

export function clients(transport: Transport) {
  return {
    queue: createClient(QueueService, transport),
    concerts: createClient(ConcertService, transport),
    reservations: createClient(ReservationService, transport),
    wallet: createClient(WalletService, transport),
  };
}

/**
 * Queue until ACTIVE, browse, hold, get credited by the provider, pay, read
 * back. `named` is what the buyer puts in `user_id` fields: "" (the caller)
 * with authentication, the user id itself without.
 */
export async function bookingFlow(s: TestServer, buyer: Transport, provider: Transport, userId: string, named: string): Promise<void> {
  const a = clients(buyer);
  const concertId = "iu-golden-hour-2027";
  const date = "2027-03-13";
  await clients(provider).wallet.chargeBalance({ userId, amount: 300_000n, idempotencyKey: `${userId}-topup` });
  const { ticket } = await a.queue.issueToken({ userId: named });
  await s.deps.queue.tick();
  expect((await a.queue.getQueueStatus({ token: ticket!.token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  const headers = { "x-queue-token": ticket!.token };

  const { dates } = await a.concerts.listAvailableDates({ concertId }, { headers });
  expect(dates.map((d) => d.date)).toContain(date);
  const { seats } = await a.concerts.listAvailableSeats({ concertId, date }, { headers });
  const seat = seats[0];
  const { reservation } = await a.reservations.holdSeat({ concertId, date, seatNumber: seat.seatNumber }, { headers });
  expect(reservation?.userId).toBe(userId);
  const paid = await a.reservations.payReservation({ reservationId: reservation!.reservationId, idempotencyKey: `${userId}-pay` }, { headers });
  expect(paid.reservation?.status).toBe(ReservationStatus.CONFIRMED);
  expect(paid.balance).toBe(300_000n - seat.price);

  expect((await a.wallet.getBalance({ userId: named })).balance).toBe(300_000n - seat.price);
  expect((await a.wallet.listWalletEntries({ userId: named })).entries.map((e) => e.amount)).toEqual([-seat.price, 300_000n]);
  const mine = await a.reservations.listReservations({ userId: named });
  expect(mine.reservations.map((r) => [r.reservationId, r.status])).toEqual([[reservation!.reservationId, ReservationStatus.CONFIRMED]]);
  expect((await a.reservations.getReservation({ reservationId: reservation!.reservationId })).reservation?.userId).toBe(userId);
  expect(await checkInvariants(s.deps.orm.em.fork())).toEqual([]);
}
