import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { Concert } from "./concert.entity.js";

/** One show: a concert on one calendar date. */
export const ConcertDate = defineEntity({
  name: "ConcertDate",
  tableName: "concert_date",
  uniques: [{ properties: ["concert", "date"] }],
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    concert: () => p.manyToOne(Concert).fieldName("concert_id"),
    /** "YYYY-MM-DD", a PostgreSQL date. */
    date: p.string().columnType("date"),
    startsAt: p.datetime().columnType("timestamptz"),
  },
});
export type ConcertDate = InferEntity<typeof ConcertDate>;
