import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { failedPrecondition } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { ConcertDate } from "./concert-date.entity.js";

/**
 * A seat of one show, with its price in whole won, and the seat's current
 * hold and sale. The row is the single source of truth for who may have the
 * seat: a hold is won by one conditional UPDATE of this row, a sale by
 * `sell()` on the row locked for update.
 *
 * The reservation ids are plain uuids, not foreign keys: the catalog module
 * does not know the reservation module (imports point one way), and the
 * hold writes the seat and inserts its reservation in one transaction.
 */
const SeatSchema = defineEntity({
  name: "Seat",
  tableName: "seat",
  uniques: [
    { properties: ["concertDate", "seatNumber"] },
    // A reservation holds or buys one seat only.
    { name: "seat_held_by_reservation_id_unique", properties: ["heldByReservationId"] },
    { name: "seat_sold_reservation_id_unique", properties: ["soldReservationId"] },
  ],
  checks: [
    { name: "seat_seat_number_check", expression: "seat_number >= 1 and seat_number <= 50" },
    { name: "seat_price_check", expression: "price > 0" },
    // A hold is a holder plus an end; never one without the other.
    { name: "seat_hold_pair_check", expression: "(held_by_reservation_id is null) = (hold_expires_at is null)" },
    // A sold seat carries no hold.
    { name: "seat_sold_not_held_check", expression: "sold_reservation_id is null or held_by_reservation_id is null" },
  ],
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    concertDate: () => p.manyToOne(ConcertDate).fieldName("concert_date_id"),
    seatNumber: p.smallint(),
    price: p.bigint("number"),
    /** The reservation holding the seat; the hold counts only while `holdExpiresAt` is in the future. */
    heldByReservationId: p.uuid().nullable(),
    holdExpiresAt: p.datetime().columnType("timestamptz").nullable(),
    /** Set once, by payment: the seat is sold for good. */
    soldReservationId: p.uuid().nullable(),
    /**
     * Bumped by every hold, cancel, expiry and sale. A change flushed through
     * the unit of work matches only the version it read, so a writer that read
     * the seat without a lock cannot overwrite a newer hold (OptimisticLockError).
     */
    version: p.integer().version(),
  },
});

export interface Seat extends InferEntity<typeof SeatSchema> {}
export class Seat {
  /**
   * The sale, and the fencing check of payment: the seat must still be held
   * by this very reservation, unexpired at `now`, and unsold. Call it on the
   * row locked for update, so no hold or sweep slips in before the flush.
   */
  sell(reservation: { id: string }, now: Date): void {
    const heldByIt = this.heldByReservationId === reservation.id && this.holdExpiresAt != null && this.holdExpiresAt.getTime() > now.getTime();
    if (!heldByIt || this.soldReservationId != null) {
      throw failedPrecondition(Reason.HOLD_EXPIRED, "the hold has expired; hold the seat again");
    }
    this.soldReservationId = reservation.id;
    this.heldByReservationId = null;
    this.holdExpiresAt = null;
  }

  /** Drops the hold of `reservation`, if it is still the one on this seat. */
  releaseHold(reservation: { id: string }): void {
    if (this.heldByReservationId !== reservation.id) return;
    this.heldByReservationId = null;
    this.holdExpiresAt = null;
  }
}
SeatSchema.setClass(Seat);
