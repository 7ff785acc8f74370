import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { Seat } from "../concert/seat.entity.js";

export const RESERVATION_STATUSES = ["HELD", "CONFIRMED", "CANCELLED", "EXPIRED"] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

/**
 * A hold on one seat and the sale it may become. The stored status HELD is
 * only a claim: it counts while `holdExpiresAt` is in the future, and the
 * seat row (held_by_reservation_id) decides who really has the seat.
 */
export const Reservation = defineEntity({
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
    version: p.integer().version(),
  },
});
export type Reservation = InferEntity<typeof Reservation>;
