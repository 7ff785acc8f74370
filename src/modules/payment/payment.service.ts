import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { errorReason, failedPrecondition, notFound } from "../../platform/errors.js";
import { getReservation, RESERVATION_NOT_FOUND, type ReservationView } from "../reservation/reservation.service.js";
import { debitWithEntry } from "../wallet/wallet.service.js";

export interface PaymentView {
  id: string;
  reservationId: string;
  amount: number;
  paidAt: Date;
}

export interface PayResult {
  reservation: ReservationView;
  payment: PaymentView;
  /** Wallet balance right after this payment's debit. */
  balance: number;
}

export interface PayOptions {
  /** Test hook: runs after the debit, inside the transaction (to prove a late failure undoes everything). */
  afterDebit?: () => Promise<void>;
}

interface LockedReservation {
  id: string;
  user_id: string;
  seat_id: string;
  amount: string;
  status: string;
  /** The hold is unexpired at this transaction's `now`. */
  live: boolean;
  /** Raw timestamptz text (the ORM's type parsers keep it a string). */
  hold_expires_at: string;
  created_at: string;
  seat_number: number;
  concert_id: string;
  /** "YYYY-MM-DD" */
  date: string;
}

/**
 * Pays the caller's hold as one unit of work: lock the reservation and its
 * seat, check owner, HELD and unexpired at this moment, debit exactly the
 * reservation's amount (guarded against a negative balance), record the
 * payment and its ledger entry, sell the seat, confirm the reservation. Any
 * failure rolls all of it back. A retry with the same idempotency key gets the
 * first result and no second debit, also when the two race (the unique keys
 * on payment let exactly one commit).
 *
 * Another user's reservation is NOT_FOUND, never PERMISSION_DENIED: ids must
 * not reveal that someone else holds a seat.
 */
export async function payReservation(
  em: EntityManager,
  clock: Clock,
  input: { userId: string; reservationId: string; idempotencyKey?: string },
  options: PayOptions = {},
): Promise<PayResult> {
  const key = input.idempotencyKey || undefined;
  if (key) {
    const earlier = await findPaymentByKey(em, input.userId, key);
    if (earlier) return replay(em, clock, earlier, input.reservationId);
  }
  try {
    const paid = await em.transactional(async (tx) => {
      const now = clock.now();
      // Also reads what the answer shows of the reservation (seat, show), so
      // nothing is read again after commit. Only the reservation row is locked.
      const [r] = await tx.execute<LockedReservation[]>(
        `select r.id, r.user_id, r.seat_id, r.amount, r.status, r.hold_expires_at > ? as live, r.hold_expires_at, r.created_at,
                s.seat_number, d.concert_id, d.date
         from reservation r join seat s on s.id = r.seat_id join concert_date d on d.id = s.concert_date_id
         where r.id = ? for update of r`,
        [now, input.reservationId],
      );
      if (!r || r.user_id !== input.userId) throw notFound(RESERVATION_NOT_FOUND, `no reservation ${input.reservationId}`);
      if (r.status === "CONFIRMED") throw failedPrecondition("ALREADY_PAID", "this reservation is already paid");
      if (r.status !== "HELD") throw failedPrecondition("RESERVATION_NOT_HELD", `the reservation is ${r.status.toLowerCase()}`);
      if (!r.live) throw holdExpired();
      const amount = Number(r.amount);

      // The fencing check: the seat must still be held by this very reservation, unexpired.
      const sold = await tx.execute<{ id: string }[]>(
        `update seat set sold_reservation_id = ?, held_by_reservation_id = null, hold_expires_at = null, version = version + 1
         where id = ? and held_by_reservation_id = ? and hold_expires_at > ? and sold_reservation_id is null returning id`,
        [r.id, r.seat_id, r.id, now],
      );
      if (sold.length !== 1) throw holdExpired();

      const balance = await debitWithEntry(tx, now, { userId: input.userId, amount, idempotencyKey: key, reservationId: r.id });
      await options.afterDebit?.();
      // Confirm the reservation and record the payment in one statement: the
      // insert takes its row from the update, so no payment without the confirmation.
      const paymentId = randomUUID();
      const recorded = await tx.execute<{ id: string }[]>(
        `with confirmed as (
           update reservation set status = 'CONFIRMED', confirmed_at = ?, version = version + 1
           where id = ? and status = 'HELD' returning id
         )
         insert into payment (id, reservation_id, user_id, amount, idempotency_key, created_at)
         select ?, id, ?, ?, ?, ? from confirmed
         returning id`,
        [now, r.id, paymentId, input.userId, amount, key ?? null, now],
      );
      if (recorded.length !== 1) throw holdExpired();
      const platform = tx.getPlatform();
      const reservation: ReservationView = {
        id: r.id,
        userId: r.user_id,
        concertId: r.concert_id,
        date: r.date,
        seatNumber: r.seat_number,
        amount,
        status: "CONFIRMED",
        holdExpiresAt: platform.parseDate(r.hold_expires_at),
        createdAt: platform.parseDate(r.created_at),
        confirmedAt: now,
      };
      return { reservation, payment: { id: paymentId, reservationId: r.id, amount, paidAt: now }, balance };
    });
    return paid;
  } catch (err) {
    // A racing call with the same key committed first (we either hit its unique
    // key or found the reservation already paid): answer with its result.
    if (key && (err instanceof UniqueConstraintViolationException || errorReason(err) === "ALREADY_PAID")) {
      const earlier = await findPaymentByKey(em.fork(), input.userId, key);
      if (earlier) return replay(em.fork(), clock, earlier, input.reservationId);
    }
    throw err;
  }
}

function holdExpired() {
  return failedPrecondition("HOLD_EXPIRED", "the hold has expired; hold the seat again");
}

interface PaymentRow {
  id: string;
  reservation_id: string;
  amount: string;
  created_at: string | Date;
  balance_after: string;
}

/**
 * The payment made earlier with this key, and the balance its debit left.
 * Runs before every keyed payment, so it must stay an index lookup: the
 * payment's ledger line carries the same key, so the join goes through the
 * ledger's unique (user_id, idempotency_key) index. (wallet_entry has no index
 * on reservation_id; joining on that alone scanned the whole ledger.)
 */
async function findPaymentByKey(em: EntityManager, userId: string, key: string): Promise<PaymentRow | undefined> {
  const [row] = await em.execute<PaymentRow[]>(
    `select p.id, p.reservation_id, p.amount, p.created_at, e.balance_after
     from payment p join wallet_entry e
       on e.user_id = p.user_id and e.idempotency_key = p.idempotency_key and e.reservation_id = p.reservation_id and e.kind = 'PAYMENT'
     where p.user_id = ? and p.idempotency_key = ?`,
    [userId, key],
  );
  return row;
}

async function replay(em: EntityManager, clock: Clock, p: PaymentRow, reservationId: string): Promise<PayResult> {
  if (p.reservation_id !== reservationId) {
    throw failedPrecondition("IDEMPOTENCY_KEY_REUSED", "this idempotency key was already used to pay another reservation");
  }
  return {
    reservation: await getReservation(em, clock, reservationId),
    payment: { id: p.id, reservationId, amount: Number(p.amount), paidAt: new Date(p.created_at) },
    balance: Number(p.balance_after),
  };
}
