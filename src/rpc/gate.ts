import type { Interceptor } from "@connectrpc/connect";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb.js";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import type { Queue } from "../modules/queue/queue.service.js";
import { callerKey, principalKey } from "./context.js";
import { checkTokenOwner } from "./identity.js";

/** The RPCs only an ACTIVE queue token opens. */
export const GATED_PROCEDURES = new Set(
  [
    ConcertService.method.listAvailableDates,
    ConcertService.method.listAvailableSeats,
    ReservationService.method.holdSeat,
    ReservationService.method.cancelHold,
    ReservationService.method.payReservation,
  ].map((m) => `${m.parent.typeName}/${m.name}`),
);

export const QUEUE_TOKEN_HEADER = "x-queue-token";

/**
 * Refuses gated calls before any work unless `x-queue-token` is ACTIVE
 * (FAILED_PRECONDITION with a QUEUE_TOKEN_* reason, HTTP 400 over Connect) or
 * is another user's (PERMISSION_DENIED, QUEUE_TOKEN_NOT_YOURS, checked before
 * the token is looked up or its use recorded), and puts the token's user in the
 * call context: the request body never names the acting user for these RPCs.
 */
export function createQueueGateInterceptor(queue: Queue): Interceptor {
  return (next) => async (req) => {
    if (!GATED_PROCEDURES.has(`${req.service.typeName}/${req.method.name}`)) return next(req);
    const token = req.header.get(QUEUE_TOKEN_HEADER);
    const ticket = await queue.admitCaller(token, (userId) => checkTokenOwner(req.contextValues.get(principalKey), userId));
    req.contextValues.set(callerKey, { userId: ticket.userId, token: ticket.token });
    return next(req);
  };
}
