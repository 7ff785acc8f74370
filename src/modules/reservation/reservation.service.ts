import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { notFound } from "../../platform/errors.js";
import { Reservation, type ReservationStatus } from "./reservation.entity.js";

export const RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND";

/** A reservation as callers see it: where the seat is, and its status at the clock's time. */
export interface ReservationView {
  id: string;
  userId: string;
  concertId: string;
  /** "YYYY-MM-DD" */
  date: string;
  seatNumber: number;
  amount: number;
  status: ReservationStatus;
  holdExpiresAt: Date;
  createdAt: Date;
  confirmedAt?: Date;
}

/**
 * The status a reservation has at `now`: a HELD row whose time ran out is
 * EXPIRED whether or not the sweeper has written that down yet.
 */
export function statusAt(r: Pick<Reservation, "status" | "holdExpiresAt">, now: Date): ReservationStatus {
  return r.status === "HELD" && r.holdExpiresAt.getTime() <= now.getTime() ? "EXPIRED" : r.status;
}

/** `r` must have `seat.concertDate` loaded. */
export function viewOf(r: Reservation, now: Date): ReservationView {
  const seat = r.seat;
  const show = seat.concertDate;
  return {
    id: r.id,
    userId: r.userId,
    concertId: show.concert.id,
    date: show.date,
    seatNumber: seat.seatNumber,
    amount: r.amount,
    status: statusAt(r, now),
    holdExpiresAt: r.holdExpiresAt,
    createdAt: r.createdAt,
    confirmedAt: r.confirmedAt ?? undefined,
  };
}

/** One reservation, or NOT_FOUND. */
export async function getReservation(em: EntityManager, clock: Clock, id: string): Promise<ReservationView> {
  const r = await em.findOne(Reservation, { id }, { populate: ["seat.concertDate"] });
  if (!r) throw notFound(RESERVATION_NOT_FOUND, `no reservation ${id}`, { reservation_id: id });
  return viewOf(r, clock.now());
}

/** A user's reservations, newest first. */
export async function listReservations(em: EntityManager, clock: Clock, userId: string): Promise<ReservationView[]> {
  const rows = await em.find(Reservation, { userId }, { populate: ["seat.concertDate"], orderBy: { createdAt: "desc", id: "desc" } });
  const now = clock.now();
  return rows.map((r) => viewOf(r, now));
}
