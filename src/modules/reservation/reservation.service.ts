import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { invalidArgument, notFound } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { Reservation, type ReservationStatus } from "./reservation.entity.js";

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
  if (!r) throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${id}`, { reservation_id: id });
  return viewOf(r, clock.now());
}

export interface ReservationPage {
  reservations: ReservationView[];
  /** Empty on the last page. */
  nextPageToken: string;
}

const MAX_PAGE = 100;
const DEFAULT_PAGE = 20;

/**
 * A page of a user's reservations, newest first. The page token is an opaque
 * keyset cursor on (created_at, id), the listing's order, so reservations
 * taken while a client pages neither shift nor repeat the pages after it.
 */
export async function listReservations(em: EntityManager, clock: Clock, userId: string, pageSize: number, pageToken: string): Promise<ReservationPage> {
  const size = Math.min(pageSize || DEFAULT_PAGE, MAX_PAGE);
  const after = pageToken ? decodeCursor(pageToken) : undefined;
  const rows = await em.find(
    Reservation,
    after ? { userId, $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, id: { $lt: after.id } }] } : { userId },
    { populate: ["seat.concertDate"], orderBy: { createdAt: "desc", id: "desc" }, limit: size + 1 },
  );
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  const now = clock.now();
  return { reservations: page.map((r) => viewOf(r, now)), nextPageToken: rows.length > size ? encodeCursor(last) : "" };
}

// created_at is written from the clock's Date, so milliseconds are its whole precision.
const CURSOR = /^r1:(\d{1,15}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

function encodeCursor(r: Pick<Reservation, "createdAt" | "id">): string {
  return Buffer.from(`r1:${r.createdAt.getTime()}:${r.id}`).toString("base64url");
}

function decodeCursor(token: string): { createdAt: Date; id: string } {
  const m = CURSOR.exec(Buffer.from(token, "base64url").toString());
  if (!m) throw invalidArgument(Reason.INVALID_PAGE_TOKEN, "page_token is not one this server issued");
  return { createdAt: new Date(Number(m[1])), id: m[2] };
}
