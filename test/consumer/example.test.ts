/**
 * How another project tests against boxoffice: the README's "Contract tests"
 * example, run for real. A consumer imports the same things from the package
 * ("boxoffice/testing", "boxoffice/gen/...").
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb.js";
import { ErrorReason } from "../../gen/boxoffice/error/v1/error_reason_pb.js";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb.js";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb.js";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb.js";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { startTestServer, type BoxofficeTestServer } from "../../src/testing.js";

let bo: BoxofficeTestServer;
beforeAll(async () => {
  bo = await startTestServer();
}, 120_000);
afterAll(() => bo?.stop());

test("a hold left unpaid past HOLD_TTL cannot be paid", async () => {
  const transport = createConnectTransport({ baseUrl: bo.baseUrl, httpVersion: "1.1" });
  const queue = createClient(QueueService, transport);
  const concerts = createClient(ConcertService, transport);
  const reservations = createClient(ReservationService, transport);

  // The test server's queue admits at once: the first status is ACTIVE within a round or two.
  const admitted = async (): Promise<string> => {
    const { ticket } = await queue.issueToken({ userId: "alice" });
    for (let token = ticket!.token; ; await new Promise((r) => setTimeout(r, 20))) {
      const { ticket: t } = await queue.getQueueStatus({ token });
      if (t!.status === QueueStatus.ACTIVE) return t!.token;
      token = t!.token;
    }
  };
  const headers = (token: string) => ({ headers: { "x-queue-token": token } });

  const token = await admitted();
  const {
    concerts: [concert],
  } = await concerts.listConcerts({});
  const {
    dates: [show],
  } = await concerts.listAvailableDates({ concertId: concert.concertId }, headers(token));
  const { reservation } = await reservations.holdSeat({ concertId: concert.concertId, date: show.date, seatNumber: 7 }, headers(token));
  expect(reservation!.status).toBe(ReservationStatus.HELD);

  await bo.advance(5 * 60_000 + 1_000); // HOLD_TTL (5m) and a second

  const { reservation: later } = await reservations.getReservation({ reservationId: reservation!.reservationId });
  expect(later!.status).toBe(ReservationStatus.EXPIRED);
  // Time moved for the queue too: the token's booking window idled out (QUEUE_ACTIVE_IDLE_TTL, 2m).
  const stale = await reservations.payReservation({ reservationId: reservation!.reservationId }, headers(token)).catch(ConnectError.from);
  expect(stale).toMatchObject({ code: Code.FailedPrecondition });
  expect((stale as ConnectError).findDetails(ErrorInfoSchema)[0].reason).toBe(ErrorReason[ErrorReason.QUEUE_TOKEN_EXPIRED]);

  const refused = await reservations.payReservation({ reservationId: reservation!.reservationId }, headers(await admitted())).catch(ConnectError.from);
  expect(refused).toBeInstanceOf(ConnectError);
  expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
  // advance() has swept the lapsed hold to EXPIRED, so the refusal is RESERVATION_NOT_HELD; a hold that
  // lapsed but is not swept yet is HOLD_EXPIRED. PayReservation documents both: handle both.
  expect((refused as ConnectError).findDetails(ErrorInfoSchema)[0].reason).toBe(ErrorReason[ErrorReason.RESERVATION_NOT_HELD]);
});
