import { LockMode, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Clock } from "../../platform/clock.js";
import { errorReason, failedPrecondition, notFound } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { Reservation } from "../reservation/reservation.entity.js";
import { getReservation, viewOf, type ReservationView } from "../reservation/reservation.service.js";
import { lockWallet } from "../wallet/wallet.service.js";
import { Payment } from "./payment.entity.js";

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

/**
 * Pays the caller's hold as one unit of work: load and lock the reservation
 * with its seat, then the wallet; the entities' own methods check owner, HELD
 * and unexpired at this moment (`confirm`), that the seat is still held by
 * this reservation (`sell`, the fencing check) and that the balance covers
 * exactly the reservation's amount (`debit`, which makes the ledger line);
 * then the payment is recorded and one flush writes it all. Any failure rolls
 * all of it back. A retry with the same idempotency key gets the first result
 * and no second debit, also when the two race (the unique keys on payment and
 * ledger let exactly one commit). Charges and payments share the ledger's
 * (user, key) space: a key this user gave a charge, or a payment of another
 * reservation, is IDEMPOTENCY_KEY_REUSED — final, never ABORTED, since no
 * retry could ever succeed with it.
 *
 * Lock order: reservation, then its seat, then the wallet — the first two
 * in one statement, which PostgreSQL locks in that order. Every other writer
 * takes a subset in the same order, so no cycle can form: CancelHold and the
 * sweeper take a reservation before its seat, HoldSeat takes one seat (then
 * only an advisory lock of its user and a new row), ChargeBalance only the
 * wallet; and nothing that holds a wallet waits for a seat or reservation.
 *
 * Another user's reservation is NOT_FOUND, never PERMISSION_DENIED: ids must
 * not reveal that someone else holds a seat.
 */
export async function payReservation(
  em: EntityManager,
  clock: Clock,
  input: { userId: string; reservationId: string; idempotencyKey?: string },
): Promise<PayResult> {
  const key = input.idempotencyKey || undefined;
  if (key) {
    const earlier = await earlierResult(em, clock, { ...input, idempotencyKey: key });
    if (earlier) return earlier;
  }
  try {
    return await em.transactional(async (tx) => {
      const now = clock.now();
      const reservation = await lockReservation(tx, input.reservationId);
      if (!reservation || reservation.userId !== input.userId) {
        throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${input.reservationId}`);
      }
      reservation.confirm(now);
      reservation.seat.sell(reservation, now);
      const wallet = await lockWallet(tx, input.userId, now);
      if (!wallet) throw insufficientBalance(0, reservation.amount);
      const entry = wallet.debit(reservation.amount, now, { reservationId: reservation.id, idempotencyKey: key });
      const payment = new Payment(reservation, now, key);
      tx.persist([entry, payment]);
      return {
        reservation: viewOf(reservation, now),
        payment: { id: payment.id, reservationId: reservation.id, amount: payment.amount, paidAt: now },
        balance: wallet.balance,
      };
    });
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

/**
 * The reservation with its seat and show, reservation and seat locked for
 * update in one statement (the show is only read: it is in the answer).
 * PostgreSQL locks the rows of one statement in the order of its FROM list,
 * so the reservation is taken before the seat, as everywhere else.
 */
async function lockReservation(tx: EntityManager, id: string): Promise<Reservation | null> {
  return tx
    .createQueryBuilder(Reservation, "r")
    .select("*")
    .joinAndSelect("r.seat", "s")
    .joinAndSelect("s.concertDate", "d")
    .where({ id })
    .setLockMode(LockMode.PESSIMISTIC_WRITE, ["r", "s"])
    .getSingleResult();
}

/** A user without a wallet has nothing to pay with: the same refusal as an empty one. */
function insufficientBalance(balance: number, required: number) {
  return failedPrecondition(Reason.INSUFFICIENT_BALANCE, "the balance does not cover the amount", { balance: String(balance), required: String(required) });
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
  if (use?.kind !== "PAYMENT") return undefined;
  return resultOf(em, clock, use, input.reservationId);
}
