import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ReservationService } from "../../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import type { Deps } from "../../deps.js";
import { requireCaller } from "../../rpc/context.js";
import { replayOnlyKey } from "../../rpc/gate.js";
import { toReservationInit } from "../reservation/reservation.routes.js";
import { payReservation, replayPayment, type PayResult } from "./payment.service.js";

/**
 * PayReservation: pay in one transaction, then end the caller's queue token.
 * A call the gate let through with a token already spent (`replayOnlyKey`)
 * only looks its idempotency key up: the first result, or the gate's refusal.
 */
/** What PayReservation uses: the database, the clock, the queue (to end the token), the log. */
export type PaymentRouteDeps = Pick<Deps, "orm" | "clock" | "queue" | "log">;

export function createPayReservationHandler(deps: PaymentRouteDeps): ServiceImpl<typeof ReservationService>["payReservation"] {
  return async (req, ctx) => {
    const caller = requireCaller(ctx);
    const input = { userId: caller.userId, reservationId: req.reservationId, idempotencyKey: req.idempotencyKey };
    const spentToken = ctx.values.get(replayOnlyKey);
    if (spentToken) {
      const first = await replayPayment(deps.orm.em.fork(), deps.clock, input);
      if (!first) throw spentToken;
      return toResponse(first);
    }
    const r = await payReservation(deps.orm.em.fork(), deps.clock, input);
    // The sale is committed: failing to end the token now must not turn it into
    // an error (a retry would then see ALREADY_PAID). The token lapses by its TTL.
    await deps.queue.expireAfterPayment(caller.token).catch((err) => deps.log.warn({ err }, "could not expire the queue token after payment"));
    return toResponse(r);
  };
}

function toResponse(r: PayResult) {
  return {
    reservation: toReservationInit(r.reservation),
    payment: { paymentId: r.payment.id, reservationId: r.payment.reservationId, amount: BigInt(r.payment.amount), paidAt: timestampFromDate(r.payment.paidAt) },
    balance: BigInt(r.balance),
  };
}
