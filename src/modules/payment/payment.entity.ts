import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { Reservation } from "../reservation/reservation.entity.js";

/** The sale of one held seat: exactly the reservation's amount, debited once. */
export const Payment = defineEntity({
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
export type Payment = InferEntity<typeof Payment>;
