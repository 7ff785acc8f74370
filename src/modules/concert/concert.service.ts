import type { EntityManager } from "@mikro-orm/postgresql";
import type { FilterQuery } from "@mikro-orm/core";
import type { Clock } from "../../platform/clock.js";
import { notFound } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { ConcertDate } from "./concert-date.entity.js";
import { Concert } from "./concert.entity.js";
import { Seat } from "./seat.entity.js";

/**
 * Seats neither sold nor under a hold that is still running at `now`. An
 * expired hold is simply not a hold: no sweeper has to run first. `now` is
 * the injected clock's time, never the database's.
 */
export function freeSeatFilter(now: Date): FilterQuery<Seat> {
  return { soldReservationId: null, $or: [{ holdExpiresAt: null }, { holdExpiresAt: { $lte: now } }] };
}

/** The same rule for a loaded seat. */
export function isSeatFree(seat: Pick<Seat, "soldReservationId" | "holdExpiresAt">, now: Date): boolean {
  return seat.soldReservationId == null && (seat.holdExpiresAt == null || seat.holdExpiresAt.getTime() <= now.getTime());
}

/** Every concert, ordered by id. */
export async function listConcerts(em: EntityManager): Promise<Concert[]> {
  return em.find(Concert, {}, { orderBy: { id: "asc" } });
}

export interface AvailableDate {
  concertId: string;
  /** "YYYY-MM-DD" */
  date: string;
  startsAt: Date;
  availableSeats: number;
  totalSeats: number;
}

/** Dates of a concert with at least one free seat, earliest first. */
export async function listAvailableDates(em: EntityManager, clock: Clock, concertId: string): Promise<AvailableDate[]> {
  const dates = await em.find(ConcertDate, { concert: concertId }, { orderBy: { date: "asc" } });
  if (dates.length === 0 && (await em.count(Concert, { id: concertId })) === 0) {
    throw notFound(Reason.CONCERT_NOT_FOUND, `no concert "${concertId}"`, { concert_id: concertId });
  }
  if (dates.length === 0) return [];
  const counts = await em.execute<{ concert_date_id: string; total: number; available: number }[]>(
    `select concert_date_id::text as concert_date_id,
            count(*)::int as total,
            count(*) filter (where sold_reservation_id is null and (hold_expires_at is null or hold_expires_at <= ?))::int as available
     from seat where concert_date_id in (select id from concert_date where concert_id = ?)
     group by concert_date_id`,
    [clock.now(), concertId],
  );
  const byDate = new Map(counts.map((c) => [Number(c.concert_date_id), c]));
  const result: AvailableDate[] = [];
  for (const d of dates) {
    const c = byDate.get(d.id);
    if (!c || c.available === 0) continue;
    result.push({ concertId, date: d.date, startsAt: d.startsAt, availableSeats: c.available, totalSeats: c.total });
  }
  return result;
}

/**
 * True for a "YYYY-MM-DD" that names a real day. The edge only checks the
 * shape, and PostgreSQL rejects "2027-02-30" with an error rather than
 * finding nothing: such a date simply has no show.
 */
export function isCalendarDate(date: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

/** One show, or NOT_FOUND. */
export async function findConcertDate(em: EntityManager, concertId: string, date: string): Promise<ConcertDate> {
  const show = isCalendarDate(date) ? await em.findOne(ConcertDate, { concert: concertId, date }) : null;
  if (!show) throw notFound(Reason.CONCERT_DATE_NOT_FOUND, `concert "${concertId}" has no show on ${date}`, { concert_id: concertId, date });
  return show;
}

export type SeatStateName = "FREE" | "HELD" | "SOLD";

/** Sold is for good; a hold counts only until it ends (see isSeatFree). */
export function seatState(seat: Pick<Seat, "soldReservationId" | "holdExpiresAt">, now: Date): SeatStateName {
  if (seat.soldReservationId != null) return "SOLD";
  return isSeatFree(seat, now) ? "FREE" : "HELD";
}

export interface ShowSeat {
  seatNumber: number;
  price: number;
  state: SeatStateName;
}

/**
 * Every seat of one show by number, each with its state, or NOT_FOUND. One
 * query reads them all, so free and taken seats add up to the show as it
 * stood at one moment; the show is looked up apart only when no seat matched.
 */
export async function listShowSeats(em: EntityManager, clock: Clock, concertId: string, date: string): Promise<ShowSeat[]> {
  const now = clock.now();
  const seats = isCalendarDate(date)
    ? await em.find(
        Seat,
        { concertDate: { concert: concertId, date } },
        { orderBy: { seatNumber: "asc" }, fields: ["seatNumber", "price", "soldReservationId", "holdExpiresAt"] },
      )
    : [];
  if (seats.length === 0) await findConcertDate(em, concertId, date);
  return seats.map((s) => ({ seatNumber: s.seatNumber, price: s.price, state: seatState(s, now) }));
}

export interface AvailableSeat {
  seatNumber: number;
  price: number;
}

/** Free seats of one show by number. */
export async function listAvailableSeats(em: EntityManager, clock: Clock, concertId: string, date: string): Promise<AvailableSeat[]> {
  const seats = await listShowSeats(em, clock, concertId, date);
  return seats.filter((s) => s.state === "FREE").map(({ seatNumber, price }) => ({ seatNumber, price }));
}
