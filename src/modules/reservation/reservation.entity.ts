import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { failedPrecondition } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { Seat } from "../concert/seat.entity.js";

export const RESERVATION_STATUSES = ["HELD", "CONFIRMED", "CANCELLED", "EXPIRED"] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

/**
 * A hold on one seat and the sale it may become. The stored status HELD is
 * only a claim: it counts while `holdExpiresAt` is in the future, and the
 * seat row (held_by_reservation_id) decides who really has the seat.
 */
const ReservationSchema = defineEntity({
  name: "Reservation",
  tableName: "reservation",
  indexes: [
    { name: "reservation_user_id_created_at_index", properties: ["userId", "createdAt"] },
    {
      // The per-user hold limit counts these.
      name: "reservation_user_id_held_index",
      expression: `create index "reservation_user_id_held_index" on "reservation" ("user_id", "hold_expires_at") where status = 'HELD'`,
    },
    {
      // The sweeper's scan: live claims only, so it stays small as history grows.
      name: "reservation_held_expiry_index",
      expression: `create index "reservation_held_expiry_index" on "reservation" ("hold_expires_at") where status = 'HELD'`,
    },
    { name: "reservation_seat_id_index", properties: ["seat"] },
  ],
  uniques: [
    {
      // Besides seat.sold_reservation_id: a seat is sold at most once.
      name: "reservation_seat_id_confirmed_unique",
      expression: `create unique index "reservation_seat_id_confirmed_unique" on "reservation" ("seat_id") where status = 'CONFIRMED'`,
    },
    {
      // A HoldSeat key names one hold of its user: a retry finds it, racing twins cannot both insert.
      name: "reservation_user_id_idempotency_key_unique",
      expression: `create unique index "reservation_user_id_idempotency_key_unique" on "reservation" ("user_id", "idempotency_key") where idempotency_key is not null`,
    },
  ],
  checks: [
    { name: "reservation_amount_check", expression: "amount > 0" },
    { name: "reservation_confirmed_at_check", expression: "(status = 'CONFIRMED') = (confirmed_at is not null)" },
  ],
  properties: {
    id: p.uuid().primary(),
    userId: p.string().length(64),
    seat: () => p.manyToOne(Seat).fieldName("seat_id"),
    /** The seat's price when the hold was taken, in whole won: what payment debits. */
    amount: p.bigint("number"),
    status: p.enum([...RESERVATION_STATUSES]),
    holdExpiresAt: p.datetime().columnType("timestamptz"),
    createdAt: p.datetime().columnType("timestamptz"),
    confirmedAt: p.datetime().columnType("timestamptz").nullable(),
    /** The HoldSeat idempotency key that made this hold, if the client sent one. */
    idempotencyKey: p.string().length(128).nullable(),
    /**
     * Bumped by every change. A change flushed through the unit of work
     * matches only the version it read, so a writer that read the row without
     * a lock (CancelHold) loses to one that changed it since with
     * OptimisticLockError instead of overwriting it.
     */
    version: p.integer().version(),
  },
});

export interface Reservation extends InferEntity<typeof ReservationSchema> {}
export class Reservation {
  /** The hold is unexpired at `now`. */
  isLiveAt(now: Date): boolean {
    return this.holdExpiresAt.getTime() > now.getTime();
  }

  /**
   * Payment's rules for the reservation: HELD and unexpired at `now`. The seat
   * decides separately (`Seat.sell`) whether this hold still has it.
   */
  confirm(now: Date): void {
    if (this.status === "CONFIRMED") throw failedPrecondition(Reason.ALREADY_PAID, "this reservation is already paid");
    if (this.status !== "HELD") throw failedPrecondition(Reason.RESERVATION_NOT_HELD, `the reservation is ${this.status.toLowerCase()}`);
    if (!this.isLiveAt(now)) throw failedPrecondition(Reason.HOLD_EXPIRED, "the hold has expired; hold the seat again");
    this.status = "CONFIRMED";
    this.confirmedAt = now;
  }

  /** The holder gives a live hold back; a lapsed, paid or cancelled one cannot be. */
  cancel(now: Date): void {
    const reservation_id = this.id;
    if (this.status === "EXPIRED" || (this.status === "HELD" && !this.isLiveAt(now))) {
      throw failedPrecondition(Reason.HOLD_EXPIRED, "the hold has expired", { reservation_id });
    }
    if (this.status !== "HELD") {
      throw failedPrecondition(Reason.RESERVATION_NOT_HELD, `the reservation is ${this.status}, not held`, { reservation_id, status: this.status });
    }
    this.status = "CANCELLED";
  }
}
ReservationSchema.setClass(Reservation);
