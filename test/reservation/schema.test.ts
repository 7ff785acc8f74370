import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { openSeededDatabase, type SeededDatabase } from "./support";

let s: SeededDatabase;
beforeAll(async () => {
  s = await openSeededDatabase();
});
afterAll(() => s?.close());

test("the entities match the migrated schema exactly", async () => {
  expect(await s.orm.schema.getUpdateSchemaSQL({ wrap: false })).toBe("");
});

describe("the database refuses what the services never write", () => {
  const seatId = async () => {
    const [row] = await s.orm.em.fork().execute<{ id: string }[]>(`select id from seat where sold_reservation_id is null order by id limit 1`);
    return row.id;
  };

  test("a hold without an end, or a sold seat that is still held", async () => {
    const em = s.orm.em.fork();
    const id = await seatId();
    await expect(em.execute(`update seat set held_by_reservation_id = ? where id = ?`, [randomUUID(), id])).rejects.toThrow(/seat_hold_pair_check/);
    await expect(
      em.execute(`update seat set held_by_reservation_id = ?, hold_expires_at = now(), sold_reservation_id = ? where id = ?`, [randomUUID(), randomUUID(), id]),
    ).rejects.toThrow(/seat_sold_not_held_check/);
  });

  test("a seat is sold at most once, by the seat row and by the reservations", async () => {
    const em = s.orm.em.fork();
    const id = await seatId();
    const insert = (rid: string, status: string) =>
      em.execute(
        `insert into reservation (id, user_id, seat_id, amount, status, hold_expires_at, created_at, confirmed_at)
         values (?, 'u', ?, 1000, ?, now(), now(), case when ? = 'CONFIRMED' then now() end)`,
        [rid, id, status, status],
      );
    const first = randomUUID();
    await insert(first, "CONFIRMED");
    await expect(insert(randomUUID(), "CONFIRMED")).rejects.toBeInstanceOf(UniqueConstraintViolationException);
    await insert(randomUUID(), "CANCELLED"); // history of the same seat is fine
    await em.execute(`update seat set sold_reservation_id = ? where id = ?`, [first, id]);
    const [other] = await em.execute<{ id: string }[]>(`select id from seat where id <> ? order by id limit 1`, [id]);
    await expect(em.execute(`update seat set sold_reservation_id = ? where id = ?`, [first, other.id])).rejects.toBeInstanceOf(
      UniqueConstraintViolationException,
    );
  });

  test("amounts are positive and confirmation times go with CONFIRMED", async () => {
    const em = s.orm.em.fork();
    const id = await seatId();
    const insert = (amount: number, status: string, confirmed: boolean) =>
      em.execute(
        `insert into reservation (id, user_id, seat_id, amount, status, hold_expires_at, created_at, confirmed_at)
         values (?, 'u', ?, ?, ?, now(), now(), ${confirmed ? "now()" : "null"})`,
        [randomUUID(), id, amount, status],
      );
    await expect(insert(0, "HELD", false)).rejects.toThrow(/reservation_amount_check/);
    await expect(insert(1000, "HELD", true)).rejects.toThrow(/reservation_confirmed_at_check/);
    await expect(insert(1000, "CONFIRMED", false)).rejects.toThrow(/reservation_confirmed_at_check/);
    await expect(insert(1000, "PAID", false)).rejects.toThrow(/reservation_status_check/);
  });
});
