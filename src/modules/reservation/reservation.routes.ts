import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { ReservationService } from "../../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import type { Config } from "../../config.js";
import type { Clock } from "../../platform/clock.js";
import { errorReason, notFound } from "../../platform/errors.js";
import type { Locks } from "../../platform/locks.js";
import { Reason } from "../../platform/reasons.js";
import { requireCaller } from "../../rpc/context.js";
import { actingUser, actsForAnyone } from "../../rpc/identity.js";
import { toReservationInit } from "./reservation.mapping.js";
import type { ReservationMetrics } from "./reservation.metrics.js";
import { getReservation, listReservations } from "./reservation.service.js";
import { cancelHold, holdSeat } from "./seat-hold.service.js";

/** What the reservation handlers use, built by the composition root. */
export interface ReservationRouteDeps {
  /** A fresh identity map per call. */
  em: () => EntityManager;
  clock: Clock;
  locks: Locks;
  hold: Config["hold"];
  metrics: ReservationMetrics;
  /** After a committed hold or cancel: the concert's free-seat counts changed (drops its cached dates). */
  seatsChanged(concertId: string): void;
}

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
        const { reservation, lock, existing } = await holdSeat(deps.em(), deps.locks, deps.clock, deps.hold, {
          userId,
          concertId: req.concertId,
          date: req.date,
          seatNumber: req.seatNumber,
          idempotencyKey: req.idempotencyKey,
        });
        if (existing) deps.metrics.answeredExisting();
        else {
          deps.metrics.granted(lock);
          deps.seatsChanged(req.concertId);
        }
        return { reservation: toReservationInit(reservation) };
      } catch (err) {
        deps.metrics.refused(errorReason(err) ?? "ERROR");
        throw err;
      }
    },
    async cancelHold(req, ctx) {
      const { userId } = requireCaller(ctx);
      const reservation = await cancelHold(deps.em(), deps.clock, userId, req.reservationId);
      deps.seatsChanged(reservation.concertId);
      return { reservation: toReservationInit(reservation) };
    },
    async getReservation(req, ctx) {
      const r = await getReservation(deps.em(), deps.clock, req.reservationId);
      // Another user's reservation reads as absent, as for CancelHold: its existence is not theirs to learn.
      if (!actsForAnyone(ctx) && actingUser(ctx, "") !== r.userId) throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${req.reservationId}`);
      return { reservation: toReservationInit(r) };
    },
    async listReservations(req, ctx) {
      const userId = actingUser(ctx, req.userId);
      const page = await listReservations(deps.em(), deps.clock, userId, req.pageSize, req.pageToken);
      return { reservations: page.reservations.map(toReservationInit), nextPageToken: page.nextPageToken };
    },
  });
}
