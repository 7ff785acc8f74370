import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { LoadStrategy, raw, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Config } from "../../config.js";
import type { Clock } from "../../platform/clock.js";
import { domainError, errorReason, failedPrecondition, notFound } from "../../platform/errors.js";
import type { Lease, Locks } from "../../platform/locks.js";
import { Reason } from "../../platform/reasons.js";
import { findConcertDate, freeSeatFilter, isCalendarDate } from "../concert/concert.service.js";
import { Seat } from "../concert/seat.entity.js";
import { Reservation } from "./reservation.entity.js";
import { getReservation, viewOf, type ReservationView } from "./reservation.service.js";

/** First key of the two-key advisory locks that serialise one user's holds. ("Hold" in ASCII.) */
const USER_HOLDS_LOCK_SPACE = 0x486f6c64;

/** How often a keyed hold looks again whether its twin (same user, same key) has finished. */
const KEY_WAIT_STEP_MS = 20;

export interface HoldSeatInput {
  userId: string;
  concertId: string;
  date: string;
  seatNumber: number;
  /** The client's key for this hold: a retry with it gets the first hold back. */
  idempotencyKey?: string;
}

export interface HoldSeatOptions {
  /**
   * false: skip Redlock and rely on the database guard alone. Tests use it to
   * show the guard keeps one winner by itself.
   */
  useLock?: boolean;
  /**
   * What to do when the lock service cannot answer (Redis down, no quorum).
   * "database" (default): go on with the database guard alone — correctness
   * never rested on the lock, and the queue already bounds how many users can
   * be here at once, so losing the lock costs contention, not safety.
   * "refuse": answer UNAVAILABLE (LOCK_UNAVAILABLE) at once.
   */
  onLockUnavailable?: "database" | "refuse";
}

interface SeatToHold {
  id: number;
  price: number;
  free: boolean;
  sold: boolean;
  /** The caller's own live hold of this seat, if they have one. */
  ownHoldId?: string;
}

/**
 * The seat and whether it is free at `now`, in one plain query: this runs for
 * every caller in an on-sale herd, most of whom are refused right here, and a
 * raw statement costs a fraction of an ORM find. Misses find out what is missing.
 */
async function findSeat(em: EntityManager, input: HoldSeatInput, now: Date): Promise<SeatToHold> {
  if (!isCalendarDate(input.date)) await findConcertDate(em, input.concertId, input.date); // throws NOT_FOUND
  const [row] = await em.execute<{ id: string; price: string; free: boolean; sold: boolean; own_hold_id: string | null }[]>(
    `select s.id, s.price,
            s.sold_reservation_id is null and (s.hold_expires_at is null or s.hold_expires_at <= ?) as free,
            s.sold_reservation_id is not null as sold,
            case when s.hold_expires_at > ? and h.user_id = ? then h.id end as own_hold_id
     from seat s join concert_date d on d.id = s.concert_date_id
     left join reservation h on h.id = s.held_by_reservation_id
     where d.concert_id = ? and d.date = ? and s.seat_number = ?`,
    [now, now, input.userId, input.concertId, input.date, input.seatNumber],
  );
  if (!row) {
    await findConcertDate(em, input.concertId, input.date);
    throw notFound(Reason.SEAT_NOT_FOUND, `no seat ${input.seatNumber} on ${input.date}`, { seat_number: String(input.seatNumber) });
  }
  return { id: Number(row.id), price: Number(row.price), free: row.free, sold: row.sold, ownHoldId: row.own_hold_id ?? undefined };
}

/**
 * The hold an earlier HoldSeat of this user made with `key`, as it stands
 * now, or undefined. The key names one seat: asked for another, it is
 * IDEMPOTENCY_KEY_REUSED. One lookup on the (user_id, idempotency_key) index.
 */
async function findHoldByKey(em: EntityManager, clock: Clock, input: HoldSeatInput, key: string): Promise<ReservationView | undefined> {
  const r = await em.findOne(Reservation, { userId: input.userId, idempotencyKey: key }, { populate: ["seat.concertDate"], disableIdentityMap: true });
  if (!r) return undefined;
  const first = viewOf(r, clock.now());
  if (first.concertId !== input.concertId || first.date !== input.date || first.seatNumber !== input.seatNumber) {
    throw failedPrecondition(Reason.IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used to hold another seat");
  }
  return first;
}

/**
 * Leases a hold's idempotency key, so that a twin call with the same key (a
 * client that retried before the first answer came) waits for the first to
 * finish and then finds its hold, instead of meeting its seat lock and being
 * told SEAT_UNAVAILABLE about its own seat. The wait ends after one lock TTL;
 * then, as when Redis is down, the database decides alone (the seat's
 * fencing update and the unique key index let one hold commit).
 */
async function leaseKey(locks: Locks, name: string, ttlMs: number): Promise<{ lease?: Lease; waited: boolean }> {
  const deadline = Date.now() + ttlMs;
  for (let waited = false; ; waited = true) {
    const got = await locks.tryAcquire(name, ttlMs).catch(() => "unavailable" as const);
    if (got === "unavailable") return { waited };
    if (got !== "busy") return { lease: got, waited };
    if (Date.now() >= deadline) return { waited: true };
    await sleep(KEY_WAIT_STEP_MS);
  }
}

/** How the lock went, for metrics. */
export type LockOutcome = "acquired" | "skipped" | "unavailable" | "contended";

export interface HoldSeatResult {
  reservation: ReservationView;
  lock: LockOutcome;
  /**
   * true: nothing was written; the answer is a hold made earlier (the first
   * result of this idempotency key, or the caller's live hold of this seat).
   */
  existing: boolean;
}

const seatUnavailable = (input: HoldSeatInput, state: "held" | "sold" | "locked") =>
  failedPrecondition(Reason.SEAT_UNAVAILABLE, `seat ${input.seatNumber} of ${input.concertId} on ${input.date} is not free`, {
    concert_id: input.concertId,
    date: input.date,
    seat_number: String(input.seatNumber),
    state,
  });

/**
 * Holds a free seat for a user until `now + hold.ttlMs`.
 *
 * 0. With an idempotency key, a hold this user made with it earlier is the
 *    answer, as it stands now (HELD, or paid, cancelled or lapsed since); a
 *    seat the caller holds already is answered with that hold. Both write
 *    nothing: a retry after a lost answer must not take a second seat or
 *    meet its own hold as SEAT_UNAVAILABLE.
 * 1. Look the seat up; refuse at once if it is sold or held (no lock, no transaction).
 * 2. Take the Redlock lease `seat:<id>` without retries: whoever is taking the
 *    seat right now wins and the rest are refused fast. The lease only cuts
 *    contention; it may run out mid-operation. A keyed hold first leases its
 *    key, so a twin with the same key waits for the first instead.
 * 3. One transaction: the fencing check — a single UPDATE of the seat row
 *    that matches only while the seat is unsold and its hold (if any) has
 *    ended at the clock's `now`, bumping its version; a holder whose lease
 *    ran out finds the row already taken and writes nothing — then the
 *    per-user limit under an advisory lock on the user, then the reservation
 *    insert (with its key: the unique (user_id, idempotency_key) index lets
 *    one of two racing twins commit; the loser answers with the winner's hold).
 * 4. Release the leases after commit.
 *
 * Refusals: SEAT_UNAVAILABLE (FAILED_PRECONDITION) for a sold or held seat and
 * for one another request is taking right now. The caller's move is the same
 * in all three cases — pick another seat — and ABORTED would invite clients
 * to retry the same hot seat. HOLD_LIMIT_REACHED (FAILED_PRECONDITION): pay or
 * cancel a hold first. IDEMPOTENCY_KEY_REUSED (FAILED_PRECONDITION): the key
 * already holds another seat.
 */
export async function holdSeat(
  em: EntityManager,
  locks: Locks,
  clock: Clock,
  hold: Config["hold"],
  input: HoldSeatInput,
  options: HoldSeatOptions = {},
): Promise<HoldSeatResult> {
  const { useLock = true } = options;
  const key = input.idempotencyKey || undefined;
  const earlier = (reservation: ReservationView): HoldSeatResult => ({ reservation, lock: "skipped", existing: true });
  if (key) {
    const first = await findHoldByKey(em, clock, input, key);
    if (first) return earlier(first);
  }
  const seat = await findSeat(em, input, clock.now());
  if (seat.ownHoldId) return earlier(await getReservation(em, clock, seat.ownHoldId));
  if (!seat.free) throw seatUnavailable(input, seat.sold ? "sold" : "held");
  if (!key) return claimSeat(em, locks, clock, hold, input, seat, options);

  const { lease: keyLease, waited } = useLock ? await leaseKey(locks, `hold-key:${input.userId}:${key}`, hold.lockTtlMs) : { waited: false };
  try {
    if (waited) {
      const first = await findHoldByKey(em, clock, input, key);
      if (first) return earlier(first);
    }
    return await claimSeat(em, locks, clock, hold, input, seat, options, key);
  } catch (err) {
    // A twin with this key got here first (its lease lapsed, or Redis is
    // down and the database decided): its hold is this call's answer too.
    if (err instanceof UniqueConstraintViolationException || errorReason(err) === Reason.SEAT_UNAVAILABLE) {
      const first = await findHoldByKey(em.fork(), clock, input, key);
      if (first) return earlier(first);
    }
    throw err;
  } finally {
    await keyLease?.release();
  }
}

/** Steps 2-4 of holdSeat: the seat lease, then the transaction that takes the seat. */
async function claimSeat(
  em: EntityManager,
  locks: Locks,
  clock: Clock,
  hold: Config["hold"],
  input: HoldSeatInput,
  seat: SeatToHold,
  options: HoldSeatOptions,
  key?: string,
): Promise<HoldSeatResult> {
  const { useLock = true, onLockUnavailable = "database" } = options;
  let lease: Lease | undefined;
  let lock: LockOutcome = "skipped";
  if (useLock) {
    // A lock client that throws (a broken install, an unexpected Redis reply)
    // counts as Redis down: the database guard still decides.
    const got = await locks.tryAcquire(`seat:${seat.id}`, hold.lockTtlMs).catch(() => "unavailable" as const);
    if (got === "busy") {
      // A retry with a key may meet the lease of its own first attempt, taken
      // by an instance that died before committing: the lease only cuts
      // contention, so a keyed call lets the database guard decide instead of
      // being refused its seat for a lease's length.
      if (!key) throw seatUnavailable(input, "locked");
      lock = "contended";
    } else if (got === "unavailable") {
      if (onLockUnavailable === "refuse") {
        throw domainError(Code.Unavailable, Reason.LOCK_UNAVAILABLE, "seat locks are unavailable; retry shortly");
      }
      lock = "unavailable";
    } else {
      lease = got;
      lock = "acquired";
    }
  }
  try {
    const reservation = await em.transactional(async (tx) => {
      const now = clock.now();
      const id = randomUUID();
      const holdExpiresAt = new Date(now.getTime() + hold.ttlMs);
      // The fencing check, deliberately one guarded statement rather than a
      // load and a flush: it matches only while the seat is unsold and free
      // at `now`, so of any number of claimants exactly one row update wins
      // and a holder whose lease ran out writes nothing. Columns come from
      // the entity's metadata.
      const claim = { heldByReservationId: id, holdExpiresAt, version: raw(`${seatVersionColumn(tx)} + 1`) };
      const won = await tx.nativeUpdate(Seat, { $and: [{ id: seat.id }, freeSeatFilter(now)] }, claim);
      if (won !== 1) throw seatUnavailable(input, "held");

      // The per-user limit, race-safe: one user's concurrent holds queue on
      // this transaction-scoped advisory lock, so no two of them count before
      // the other has inserted. It comes after the seat claim, so losers of a
      // seat never touch it; no path takes it before a seat row lock and then
      // waits for another seat, so it cannot close a deadlock cycle.
      await tx.execute(`select pg_advisory_xact_lock(?, hashtext(?))`, [USER_HOLDS_LOCK_SPACE, input.userId]);
      const live = await tx.count(Reservation, { userId: input.userId, status: "HELD", holdExpiresAt: { $gt: now } });
      if (live >= hold.maxPerUser) {
        throw failedPrecondition(Reason.HOLD_LIMIT_REACHED, `at most ${hold.maxPerUser} seats may be held at once`, {
          max_per_user: String(hold.maxPerUser),
        });
      }
      // Prices are catalog data no API changes, so the price read above is the price now.
      await insertHold(tx, { id, userId: input.userId, seat, holdExpiresAt, now, idempotencyKey: key });
      return { id, holdExpiresAt, createdAt: now };
    });
    return {
      reservation: {
        ...reservation,
        userId: input.userId,
        concertId: input.concertId,
        date: input.date,
        seatNumber: input.seatNumber,
        amount: seat.price,
        status: "HELD",
      },
      lock,
      existing: false,
    };
  } finally {
    await lease?.release();
  }
}

/**
 * The reservation row of a new hold, priced at the seat's price. It only
 * claims the seat: the seat row's held_by_reservation_id, set to `id` in the
 * same transaction, is what gives it the seat.
 */
export async function insertHold(
  tx: EntityManager,
  hold: { id: string; userId: string; seat: { id: number; price: number }; holdExpiresAt: Date; now: Date; idempotencyKey?: string },
): Promise<void> {
  await tx.insert(Reservation, {
    id: hold.id,
    userId: hold.userId,
    seat: hold.seat.id,
    amount: hold.seat.price,
    status: "HELD",
    holdExpiresAt: hold.holdExpiresAt,
    createdAt: hold.now,
    confirmedAt: null,
    idempotencyKey: hold.idempotencyKey ?? null,
  });
}

/**
 * Releases a user's own live hold and frees the seat at once. Someone else's
 * reservation is NOT_FOUND (its existence is not theirs to learn); a hold
 * that ran out is HOLD_EXPIRED; a cancelled or confirmed one is
 * RESERVATION_NOT_HELD.
 *
 * The rows are read without a lock and written through the unit of work,
 * whose versioned UPDATEs match only the versions read: a payment, sweep or
 * second cancel that changed the reservation (or a new hold that took the
 * seat) in between makes this one fail with OptimisticLockError, answered
 * ABORTED/CONCURRENT_UPDATE, instead of being overwritten; the retry then
 * sees the new state. The reservation is flushed before the seat, so rows are
 * taken reservation first, then seat — the order payment and the sweeper use
 * (one flush would write the seat first: the ORM orders writes by foreign key).
 */
export async function cancelHold(em: EntityManager, clock: Clock, userId: string, reservationId: string): Promise<ReservationView> {
  return em.transactional(async (tx) => {
    const now = clock.now();
    const r = await tx.findOne(Reservation, { id: reservationId }, { populate: ["seat.concertDate"], strategy: LoadStrategy.JOINED });
    if (!r || r.userId !== userId) throw notFound(Reason.RESERVATION_NOT_FOUND, `no reservation ${reservationId}`, { reservation_id: reservationId });
    r.cancel(now);
    await tx.flush();
    r.seat.releaseHold(r);
    await tx.flush();
    return viewOf(r, now);
  });
}

/** The seat table's version column, as the entity maps it. */
function seatVersionColumn(em: EntityManager): string {
  const meta = em.getMetadata().get(Seat.name);
  return em.getPlatform().quoteIdentifier(meta.properties[meta.versionProperty!].fieldNames[0]);
}

export interface SweepResult {
  /** HELD reservations marked EXPIRED. */
  expired: number;
  /** Seats whose stale hold columns were cleared. */
  seatsFreed: number;
}

/**
 * Tidies holds whose time ran out: reservations become EXPIRED and their
 * seats drop the stale hold. Nothing depends on it for correctness (every
 * read and write compares expiry with the clock); it keeps rows honest for
 * reports. One statement per batch; rows busy in another transaction are
 * skipped until the next run.
 */
export async function expireStaleHolds(em: EntityManager, clock: Clock, batchSize = 500): Promise<SweepResult> {
  const now = clock.now();
  const [row] = await em.execute<{ expired: number; seats_freed: number }[]>(
    `with stale as (
       select id from reservation
       where status = 'HELD' and hold_expires_at <= ?
       order by hold_expires_at limit ? for update skip locked
     ), expired as (
       update reservation r set status = 'EXPIRED', version = r.version + 1
       from stale where r.id = stale.id returning r.id
     ), freed as (
       update seat s set held_by_reservation_id = null, hold_expires_at = null, version = s.version + 1
       from expired where s.held_by_reservation_id = expired.id and s.hold_expires_at <= ? returning s.id
     )
     select (select count(*) from expired)::int as expired, (select count(*) from freed)::int as seats_freed`,
    [now, batchSize, now],
  );
  return { expired: row.expired, seatsFreed: row.seats_freed };
}
