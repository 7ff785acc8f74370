import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { ConcertDate } from "./concert-date.entity.js";

/** A seat of one show, with its price in whole won. */
export const Seat = defineEntity({
  name: "Seat",
  tableName: "seat",
  uniques: [{ properties: ["concertDate", "seatNumber"] }],
  checks: [
    { name: "seat_seat_number_check", expression: "seat_number >= 1 and seat_number <= 50" },
    { name: "seat_price_check", expression: "price > 0" },
  ],
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    concertDate: () => p.manyToOne(ConcertDate).fieldName("concert_date_id"),
    seatNumber: p.smallint(),
    price: p.bigint("number"),
  },
});
export type Seat = InferEntity<typeof Seat>;
