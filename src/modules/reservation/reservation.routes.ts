import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ReservationStatus, type ReservationSchema } from "../../../gen/boxoffice/reservation/v1/reservation_pb.js";
import { ReservationService } from "../../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import type { Deps } from "../../deps.js";
import { errorReason, notFound } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { requireCaller } from "../../rpc/context.js";
import { actingUser, actsForAnyone } from "../../rpc/identity.js";
import { getReservation, listReservations, type ReservationView } from "./reservation.service.js";
import { cancelHold, holdSeat } from "./seat-hold.service.js";

const STATUS = {
  HELD: ReservationStatus.HELD,
  CONFIRMED: ReservationStatus.CONFIRMED,
  CANCELLED: ReservationStatus.CANCELLED,
  EXPIRED: ReservationStatus.EXPIRED,
} as const;

export function toReservationInit(r: ReservationView): MessageInitShape<typeof ReservationSchema> {
  return {
    reservationId: r.id,
    userId: r.userId,
    concertId: r.concertId,
    date: r.date,
    seatNumber: r.seatNumber,
    amount: BigInt(r.amount),
    status: STATUS[r.status],
    holdExpiresAt: timestampFromDate(r.holdExpiresAt),
    createdAt: timestampFromDate(r.createdAt),
    confirmedAt: r.confirmedAt ? timestampFromDate(r.confirmedAt) : undefined,
  };
}

/** What the reservation handlers use. */
export type ReservationRouteDeps = Pick<Deps, "config" | "orm" | "clock" | "locks" | "reservationMetrics">;

/**
 * HoldSeat, CancelHold, GetReservation, ListReservations here; PayReservation
 * is the payment module's (it may use reservations and wallets, not the other
 * way round), handed in by the composition root.
 */
export function registerReservationRoutes(
  router: ConnectRouter,
  deps: ReservationRouteDeps,
  payReservation: ServiceImpl<typeof ReservationService>["payReservation"],
): void {
  router.service(ReservationService, {
    payReservation,
    async holdSeat(req, ctx) {
      const { userId } = requireCaller(ctx);
      try {
        const { reservation, lock, existing } = await holdSeat(deps.orm.em.fork(), deps.locks, deps.clock, deps.config.hold, {
          userId,
          concertId: req.concertId,
          date: req.date,
          seatNumber: req.seatNumber,
          idempotencyKey: req.idempotencyKey,
        });
        if (existing) deps.reservationMetrics.answeredExisting();
        else deps.reservationMetrics.granted(lock);
        return { reservation: toReservationInit(reservation) };
      } catch (err) {
        deps.reservationMetrics.refused(errorReason(err) ?? "ERROR");
        throw err;
      }
    },
    async cancelHold(req, ctx) {
      const { userId } = requireCaller(ctx);
      return { reservation: toReservationInit(await cancelHold(deps.orm.em.fork(), deps.clock, userId, req.reservationId)) };
    },
    async getReservation(req, ctx) {
      const r = await getReservation(deps.orm.em.fork(), deps.clock, req.reservationId);
      // Another user's reservation reads as absent, as for CancelHold: its existence is not theirs to learn.
      if (!actsForAnyone(ctx) && actingUser(ctx, "") !== r.userId) throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${req.reservationId}`);
      return { reservation: toReservationInit(r) };
    },
    async listReservations(req, ctx) {
      const userId = actingUser(ctx, req.userId);
      const page = await listReservations(deps.orm.em.fork(), deps.clock, userId, req.pageSize, req.pageToken);
      return { reservations: page.reservations.map(toReservationInit), nextPageToken: page.nextPageToken };
    },
  });
}
