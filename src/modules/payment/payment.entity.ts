import { randomUUID } from "node:crypto";
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { Reservation } from "../reservation/reservation.entity.js";

/** The sale of one held seat: exactly the reservation's amount, debited once. */
const PaymentSchema = defineEntity({
  name: "Payment",
  tableName: "payment",
  uniques: [{ name: "payment_user_id_idempotency_key_unique", properties: ["userId", "idempotencyKey"] }],
  checks: [{ name: "payment_amount_check", expression: "amount > 0" }],
  properties: {
    id: p.uuid().primary(),
    reservation: () => p.oneToOne(Reservation).fieldName("reservation_id").owner().unique("payment_reservation_id_unique"),
    userId: p.string().length(64),
    amount: p.bigint("number"),
    idempotencyKey: p.string().length(128).nullable(),
    createdAt: p.datetime().columnType("timestamptz"),
  },
});

export interface Payment extends InferEntity<typeof PaymentSchema> {}
export class Payment {
  /** The payment of a reservation just confirmed: its holder pays its amount. Loaded rows skip the constructor. */
  constructor(reservation?: Reservation, now?: Date, idempotencyKey?: string) {
    if (!reservation || !now) return;
    this.id = randomUUID();
    this.reservation = reservation;
    this.userId = reservation.userId;
    this.amount = reservation.amount;
    this.idempotencyKey = idempotencyKey ?? null;
    this.createdAt = now;
  }
}
PaymentSchema.setClass(Payment);
