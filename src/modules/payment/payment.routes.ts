import type { ServiceImpl } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { ReservationService } from "../../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import type { Clock } from "../../platform/clock.js";
import type { Logger } from "../../platform/logger.js";
import { requireCaller } from "../../rpc/context.js";
import { replayOnlyKey } from "../../rpc/gate.js";
import { toPayReservationResponseInit } from "./payment.mapping.js";
import { payReservation, replayPayment } from "./payment.service.js";

/** What PayReservation uses, built by the composition root. */
export interface PaymentRouteDeps {
  /** A fresh identity map per call. */
  em: () => EntityManager;
  clock: Clock;
  /** Ends the caller's queue token once its sale is committed: the queue stays out of this module's imports. */
  expireQueueToken: (token: string) => Promise<void>;
  log: Logger;
}

/**
 * PayReservation: pay in one transaction, then end the caller's queue token.
 * A call the gate let through with a token already spent (`replayOnlyKey`)
 * only looks its idempotency key up: the first result, or the gate's refusal.
 */
export function createPayReservationHandler(deps: PaymentRouteDeps): ServiceImpl<typeof ReservationService>["payReservation"] {
  return async (req, ctx) => {
    const caller = requireCaller(ctx);
    const input = { userId: caller.userId, reservationId: req.reservationId, idempotencyKey: req.idempotencyKey };
    const spentToken = ctx.values.get(replayOnlyKey);
    if (spentToken) {
      const first = await replayPayment(deps.em(), deps.clock, input);
      if (!first) throw spentToken;
      return toPayReservationResponseInit(first);
    }
    const r = await payReservation(deps.em(), deps.clock, input);
    // The sale is committed: failing to end the token now must not turn it into
    // an error (a retry would then see ALREADY_PAID). The token lapses by its TTL.
    await deps.expireQueueToken(caller.token).catch((err) => deps.log.warn({ err }, "could not expire the queue token after payment"));
    return toPayReservationResponseInit(r);
  };
}
