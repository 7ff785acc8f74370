/** Holds: take, retry, refuse, cancel, take again. */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { expect, randomKey, reservationStatus, rpc, type Ctx } from "../context.js";
import { expectRefusal } from "../refusal.js";
import { skip } from "../report.js";
import type { Msg } from "../session.js";
import type { Show } from "./catalog.js";
import { activeToken } from "./queue.js";

/** The hold the payment checks pay for. */
export interface Hold {
  reservation: Msg;
  key: string;
}

export async function reservationChecks(ctx: Ctx, token: string | undefined, show: Show | undefined): Promise<Hold | undefined> {
  const { s, report, image } = ctx;
  const hold = rpc(image, "reservation", "HoldSeat");
  const cancel = rpc(image, "reservation", "CancelHold");
  const get = rpc(image, "reservation", "GetReservation");
  const HELD = reservationStatus(image, "HELD");
  const need = () => {
    if (!token) skip("no ACTIVE queue token");
    if (!show) skip("no show with free seats");
  };
  const [seatA, seatB] = show?.seats ?? [];
  const gated = { queueToken: token };
  const keyA = randomKey("hold");

  const first = await report.check("HoldSeat: a HELD reservation of the seat, at its price, with a hold expiry", async () => {
    need();
    const r = (await s.unary(hold, { concertId: show!.concertId, date: show!.date, seatNumber: seatA.seatNumber, idempotencyKey: keyA }, gated))
      .reservation as Msg;
    expect(r.status === HELD, `status ${r.status}`);
    expect(r.userId === s.user, `held for ${r.userId}`);
    expect(r.seatNumber === seatA.seatNumber && r.concertId === show!.concertId && r.date === show!.date, "another seat");
    expect(BigInt(r.amount) === BigInt(seatA.price), `amount ${r.amount}, seat price ${seatA.price}`);
    expect(r.holdExpiresAt && r.reservationId, "no hold_expires_at or reservation_id");
    return r;
  });

  const request = (seat: Msg, key?: string) => ({
    concertId: show!.concertId,
    date: show!.date,
    seatNumber: seat.seatNumber,
    ...(key && { idempotencyKey: key }),
  });
  await report.check("HoldSeat retried with the same idempotency_key: the same hold", async () => {
    if (!first) skip("no hold");
    const r = (await s.unary(hold, request(seatA, keyA), gated)).reservation as Msg;
    expect(r.reservationId === first.reservationId, "a different reservation");
  });
  await report.check("HoldSeat of a seat the caller holds, without a key: that hold", async () => {
    if (!first) skip("no hold");
    const r = (await s.unary(hold, request(seatA), gated)).reservation as Msg;
    expect(r.reservationId === first.reservationId, "a different reservation");
  });
  await report.check("HoldSeat with that idempotency_key for another seat: FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED", async () => {
    if (!first) skip("no hold");
    expectRefusal(image, hold, await s.refusal(hold, request(seatB, keyA), gated), Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");
  });
  await report.check("GetReservation: the hold", async () => {
    if (!first) skip("no hold");
    const r = (await s.unary(get, { reservationId: first.reservationId })).reservation as Msg;
    expect(r.reservationId === first.reservationId && r.status === HELD, `status ${r.status}`);
  });
  await report.check("ListAvailableSeats: the held seat is not listed", async () => {
    if (!first) skip("no hold");
    const seats = (await s.unary(rpc(image, "concert", "ListAvailableSeats"), { concertId: show!.concertId, date: show!.date }, gated)).seats as Msg[];
    expect(!seats.some((x) => x.seatNumber === seatA.seatNumber), `seat ${seatA.seatNumber} is still listed`);
  });
  await report.check("HoldSeat of a seat another user holds: FAILED_PRECONDITION SEAT_UNAVAILABLE, metadata state held", async () => {
    if (!first) skip("no hold");
    const other = ctx.other;
    if (!other) skip("needs a second user: with AUTH_MODE=jwt the kit has one identity");
    const otherToken = await activeToken(ctx, other);
    const info = expectRefusal(image, hold, await other.refusal(hold, request(seatA), { queueToken: otherToken }), Code.FailedPrecondition, "SEAT_UNAVAILABLE");
    expect(info.metadata.state === "held", `metadata state ${JSON.stringify(info.metadata.state)}`);
  });

  const cancelled = await report.check("CancelHold: the reservation is CANCELLED", async () => {
    if (!first) skip("no hold");
    const r = (await s.unary(cancel, { reservationId: first.reservationId }, gated)).reservation as Msg;
    expect(r.status === reservationStatus(image, "CANCELLED"), `status ${r.status}`);
    return r;
  });
  await report.check("CancelHold again: FAILED_PRECONDITION RESERVATION_NOT_HELD", async () => {
    if (!cancelled) skip("nothing cancelled");
    const err = await s.refusal(cancel, { reservationId: first!.reservationId }, gated);
    expectRefusal(image, cancel, err, Code.FailedPrecondition, "RESERVATION_NOT_HELD");
  });
  await report.check("CancelHold of a reservation that does not exist: NOT_FOUND RESERVATION_NOT_FOUND", async () => {
    need();
    expectRefusal(image, cancel, await s.refusal(cancel, { reservationId: randomUUID() }, gated), Code.NotFound, "RESERVATION_NOT_FOUND");
  });
  await report.check("GetReservation of a reservation that does not exist: NOT_FOUND RESERVATION_NOT_FOUND", async () => {
    expectRefusal(image, get, await s.refusal(get, { reservationId: randomUUID() }), Code.NotFound, "RESERVATION_NOT_FOUND");
  });

  const keyB = randomKey("hold");
  return report.check("HoldSeat of the released seat again: a new hold", async () => {
    if (!cancelled) skip("nothing cancelled");
    const r = (await s.unary(hold, request(seatA, keyB), gated)).reservation as Msg;
    expect(r.status === HELD && r.reservationId !== first!.reservationId, "not a new HELD reservation");
    return { reservation: r, key: keyB };
  });
}
