import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { errorReason, failedPrecondition, notFound } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { getReservation, type ReservationView } from "../reservation/reservation.service.js";
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
 * on payment let exactly one commit). Charges and payments share the
 * ledger's (user, key) space: a key this user gave a charge, or a payment of
 * another reservation, is IDEMPOTENCY_KEY_REUSED — final, never ABORTED,
 * since no retry could ever succeed with it.
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
    const earlier = await earlierResult(em, clock, { ...input, idempotencyKey: key });
    if (earlier) return earlier;
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
      if (!r || r.user_id !== input.userId) throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${input.reservationId}`);
      if (r.status === "CONFIRMED") throw failedPrecondition(Reason.ALREADY_PAID, "this reservation is already paid");
      if (r.status !== "HELD") throw failedPrecondition(Reason.RESERVATION_NOT_HELD, `the reservation is ${r.status.toLowerCase()}`);
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
    // key or found the reservation already paid): answer with its result, or
    // with IDEMPOTENCY_KEY_REUSED if what took the key was a charge.
    if (key && (err instanceof UniqueConstraintViolationException || errorReason(err) === Reason.ALREADY_PAID)) {
      const earlier = await earlierResult(em.fork(), clock, { ...input, idempotencyKey: key });
      if (earlier) return earlier;
    }
    throw err;
  }
}

function holdExpired() {
  return failedPrecondition(Reason.HOLD_EXPIRED, "the hold has expired; hold the seat again");
}

interface KeyUse {
  kind: "CHARGE" | "PAYMENT";
  balance_after: string;
  /** The payment's columns; null for a charge. */
  payment_id: string | null;
  reservation_id: string | null;
  amount: string | null;
  /** Raw timestamptz text (the ORM's type parsers keep it a string). */
  created_at: string | null;
}

/**
 * What this user's key was used for: the ledger line that carries it and,
 * for a payment, the payment it belongs to. Runs before every keyed payment,
 * so it must stay an index lookup: the ledger's unique (user_id,
 * idempotency_key) index finds the line, the payment's finds the payment.
 * (wallet_entry has no index on reservation_id; joining on that alone
 * scanned the whole ledger.)
 */
async function findKeyUse(em: EntityManager, userId: string, key: string): Promise<KeyUse | undefined> {
  const [row] = await em.execute<KeyUse[]>(
    `select e.kind, e.balance_after, p.id as payment_id, p.reservation_id, p.amount, p.created_at
     from wallet_entry e left join payment p
       on p.user_id = e.user_id and p.idempotency_key = e.idempotency_key and p.reservation_id = e.reservation_id
     where e.user_id = ? and e.idempotency_key = ?`,
    [userId, key],
  );
  return row;
}

/** The first result of a payment made with this key, or undefined when the key was never used. */
async function earlierResult(
  em: EntityManager,
  clock: Clock,
  input: { userId: string; reservationId: string; idempotencyKey: string },
): Promise<PayResult | undefined> {
  const use = await findKeyUse(em, input.userId, input.idempotencyKey);
  return use && resultOf(em, clock, use, input.reservationId);
}

/** What a key already used answers: the first payment's result, or IDEMPOTENCY_KEY_REUSED for a charge's key or another reservation's payment. */
async function resultOf(em: EntityManager, clock: Clock, use: KeyUse, reservationId: string): Promise<PayResult> {
  if (use.kind !== "PAYMENT" || !use.payment_id) {
    throw failedPrecondition(Reason.IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used for a charge; use a new key for the payment");
  }
  if (use.reservation_id !== reservationId) {
    throw failedPrecondition(Reason.IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used to pay another reservation");
  }
  return {
    reservation: await getReservation(em, clock, reservationId),
    payment: { id: use.payment_id, reservationId, amount: Number(use.amount), paidAt: em.getPlatform().parseDate(use.created_at!) },
    balance: Number(use.balance_after),
  };
}

/**
 * A PayReservation retry whose queue token is already spent (the gate let it
 * through for this only): the first result of the payment this key made, or
 * undefined when the key completed no payment (the caller then refuses the
 * call as the gate would have). A key of another reservation's payment is
 * IDEMPOTENCY_KEY_REUSED, as on the normal path; a key that only charged
 * completed no payment. Reads only; moves nothing.
 */
export async function replayPayment(
  em: EntityManager,
  clock: Clock,
  input: { userId: string; reservationId: string; idempotencyKey: string },
): Promise<PayResult | undefined> {
  const use = await findKeyUse(em, input.userId, input.idempotencyKey);
  if (!use || use.kind !== "PAYMENT") return undefined;
  return resultOf(em, clock, use, input.reservationId);
}
