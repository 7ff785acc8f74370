import { ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { isMessage } from "@bufbuild/protobuf";
import { PayReservationRequestSchema } from "../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { errorReason } from "../platform/errors.js";
import { Reason } from "../platform/reasons.js";
import type { Queue } from "../modules/queue/queue.service.js";
import { callerKey, principalKey } from "./context.js";
import { checkTokenOwner } from "./identity.js";
import { checkAccessDeclared, gatedProcedures, methodAccess } from "./method-options.js";

/**
 * "service/Method" of the RPCs only an ACTIVE queue token opens: those whose
 * proto declares `queue_token: QUEUE_TOKEN_REQUIRED`. Read from the
 * descriptors when this module loads, so a server whose protos lack the
 * option fails at start.
 */
export const GATED_PROCEDURES: ReadonlySet<string> = gatedProcedures();

export const QUEUE_TOKEN_HEADER = "x-queue-token";

/**
 * Set on a PayReservation that the gate let through with a spent token: the
 * handler may only answer with the first result of the payment its
 * idempotency key made, and must otherwise throw this value, the refusal the
 * gate held back (QUEUE_TOKEN_EXPIRED).
 */
export const replayOnlyKey = createContextKey<ConnectError | undefined>(undefined, { description: "PayReservation may only replay" });

/**
 * Refuses gated calls before any work unless `x-queue-token` is ACTIVE
 * (FAILED_PRECONDITION with a QUEUE_TOKEN_* reason, HTTP 400 over Connect) or
 * is another user's (PERMISSION_DENIED, QUEUE_TOKEN_NOT_YOURS, checked before
 * the token is looked up or its use recorded), and puts the token's user in the
 * call context: the request body never names the acting user for these RPCs.
 *
 * One exception: a payment ends its token, so the retry of a PayReservation
 * whose answer was lost arrives with an EXPIRED token. A PayReservation with
 * an idempotency key and a token that is ours, signed for this caller and
 * EXPIRED passes with `replayOnlyKey` set; it can return the first result of
 * that key and nothing else. Missing, forged, waiting and other users' tokens
 * are refused as always. The exception is code, not a proto option: only a
 * handler that honours `replayOnlyKey` may be given it.
 *
 * Which RPCs are gated, and whose token a caller may use, is what each RPC's
 * `(boxoffice.options.v1.access)` declares (queue_token, any_user_scope).
 */
export function createQueueGateInterceptor(queue: Queue): Interceptor {
  checkAccessDeclared();
  return (next) => async (req) => {
    const declared = methodAccess(req.method);
    if (!declared.queueToken) return next(req);
    const token = req.header.get(QUEUE_TOKEN_HEADER);
    // The owner check runs once the signature verified, before the store is
    // read: whatever admitCaller then says, `signedFor` is the token's user.
    let signedFor: string | undefined;
    try {
      const ticket = await queue.admitCaller(token, (userId) => {
        checkTokenOwner(req.contextValues.get(principalKey), userId, declared.anyUserScope);
        signedFor = userId;
      });
      req.contextValues.set(callerKey, { userId: ticket.userId, token: ticket.token });
    } catch (err) {
      const replayable =
        token &&
        signedFor !== undefined &&
        errorReason(err) === Reason.QUEUE_TOKEN_EXPIRED &&
        !req.stream &&
        isMessage(req.message, PayReservationRequestSchema) &&
        req.message.idempotencyKey !== "";
      if (!replayable) throw err;
      req.contextValues.set(callerKey, { userId: signedFor!, token });
      req.contextValues.set(replayOnlyKey, ConnectError.from(err));
    }
    return next(req);
  };
}
