/**
 * PayReservation as one unit of work, against real PostgreSQL: races, failure
 * in the middle, idempotent retries. Services are called directly with the
 * server's own dependencies; every test ends with the invariant checker.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { payReservation } from "../../src/modules/payment/payment.service";
import { holdSeat } from "../../src/modules/reservation/seat-hold.service";
import { chargeBalance, getBalance } from "../../src/modules/wallet/wallet.service";
import { ManualClock } from "../../src/platform/clock";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";

const clock = new ManualClock(Date.parse("2026-12-01T10:00:00Z"));
let db: TestDatabase;
let s: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({ DATABASE_URL: db.url, DB_POOL_MAX: "20", HOLD_MAX_PER_USER: "50" }, { clock, startQueue: false });
});
afterEach(async () => {
  expect(await checkInvariants(s.deps.orm.em.fork())).toEqual([]);
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

const em = () => s.deps.orm.em.fork();
const reason = (e: unknown) => ConnectError.from(e).findDetails(ErrorInfoSchema)[0]?.reason;

/** A concert of its own per test, `seats` seats at `price` won, one date. */
async function show(seats: number, price: number): Promise<{ concertId: string; date: string }> {
  const concertId = `c-${randomUUID().slice(0, 8)}`;
  const date = "2027-05-01";
  const e = em();
  await e.execute(`insert into concert (id, title, artist, venue) values (?, 'Test', 'Test', 'Test')`, [concertId]);
  const [d] = await e.execute<{ id: string }[]>(`insert into concert_date (concert_id, date, starts_at) values (?, ?, ?) returning id`, [
    concertId,
    date,
    new Date("2027-05-01T10:00:00Z"),
  ]);
  await e.execute(`insert into seat (concert_date_id, seat_number, price) select ?, n, ? from generate_series(1, ?) n`, [d.id, price, seats]);
  return { concertId, date };
}

async function hold(userId: string, where: { concertId: string; date: string }, seatNumber: number, at = clock) {
  const r = await holdSeat(em(), s.deps.locks, at, s.deps.config.hold, { userId, ...where, seatNumber });
  return r.reservation.id;
}

const charge = (userId: string, amount: number) => chargeBalance(em(), clock, s.deps.config.wallet, { userId, amount: BigInt(amount) });

async function state(reservationId: string) {
  const [row] = await em().execute<{ status: string; sold: string | null; held: string | null; payments: string; entries: string }[]>(
    `select r.status, s.sold_reservation_id as sold, s.held_by_reservation_id as held,
            (select count(*) from payment where reservation_id = r.id) as payments,
            (select count(*) from wallet_entry where reservation_id = r.id) as entries
     from reservation r join seat s on s.id = r.seat_id where r.id = ?`,
    [reservationId],
  );
  return { ...row, payments: Number(row.payments), entries: Number(row.entries) };
}

test("a paid hold sells the seat, confirms the reservation and debits exactly its amount", async () => {
  const where = await show(3, 2000);
  await charge("pay-1", 5000);
  const id = await hold("pay-1", where, 1);
  const r = await payReservation(em(), clock, { userId: "pay-1", reservationId: id });
  expect(r.balance).toBe(3000);
  expect(r.payment.amount).toBe(2000);
  expect(r.reservation.status).toBe("CONFIRMED");
  expect(await state(id)).toEqual({ status: "CONFIRMED", sold: id, held: null, payments: 1, entries: 1 });
});

test("the unit of work: reservation and seat locked in one statement, then the wallet; one flush writes", async () => {
  const where = await show(1, 2000);
  await charge("uow", 5000);
  const id = await hold("uow", where, 1);
  const knex = s.deps.orm.em.getConnection().getKnex();
  const statements: string[] = [];
  const record = (q: { sql: string }) => statements.push(q.sql.replace(/\s+/g, " "));
  knex.on("query", record);
  try {
    await payReservation(em(), clock, { userId: "uow", reservationId: id });
  } finally {
    knex.off("query", record);
  }
  const locks = statements.filter((q) => /for update/.test(q));
  expect(locks).toHaveLength(2);
  // The reservation (r) and its seat (s) are locked, the show (joined for the answer) is not.
  expect(locks[0]).toMatch(/from "reservation" as "r" .*join "seat" as "s" .*join "concert_date" as "d" .*for update of "r", "s"$/);
  expect(locks[1]).toMatch(/from "wallet" as "w0" .*for update$/);
  const writes = statements.filter((q) => /^(insert|update)/.test(q)).map((q) => q.split(" ").slice(0, 3).join(" "));
  expect(writes.sort()).toEqual([
    'insert into "payment"',
    'insert into "wallet_entry"',
    'update "reservation" set',
    'update "seat" set',
    'update "wallet" set',
  ]);
  expect(await state(id)).toEqual({ status: "CONFIRMED", sold: id, held: null, payments: 1, entries: 1 });
});

test("100 concurrent pays of one reservation: one success, one debit", async () => {
  const where = await show(1, 2000);
  await charge("pay-100", 100_000);
  const id = await hold("pay-100", where, 1);
  const outcomes = await Promise.allSettled(Array.from({ length: 100 }, () => payReservation(em(), clock, { userId: "pay-100", reservationId: id })));
  expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
  const reasons = new Set(outcomes.filter((o) => o.status === "rejected").map((o) => reason((o as PromiseRejectedResult).reason)));
  expect(reasons).toEqual(new Set(["ALREADY_PAID"]));
  expect(await getBalance(em(), "pay-100")).toBe(98_000);
});

test("balance 5,000 and five holds of 2,000 paid concurrently: exactly two succeed, 1,000 left", async () => {
  const where = await show(5, 2000);
  await charge("pay-5", 5000);
  const ids = [];
  for (let n = 1; n <= 5; n++) ids.push(await hold("pay-5", where, n));
  const outcomes = await Promise.allSettled(ids.map((reservationId) => payReservation(em(), clock, { userId: "pay-5", reservationId })));
  expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(2);
  const refusals = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
  expect(refusals.map(reason)).toEqual(["INSUFFICIENT_BALANCE", "INSUFFICIENT_BALANCE", "INSUFFICIENT_BALANCE"]);
  expect(refusals.every((e) => ConnectError.from(e).code === Code.FailedPrecondition)).toBe(true);
  expect(await getBalance(em(), "pay-5")).toBe(1000);
  const states = await Promise.all(ids.map(state));
  expect(states.filter((x) => x.status === "HELD" && x.held !== null && x.payments === 0 && x.entries === 0)).toHaveLength(3);
});

test("charges racing payments add up exactly", async () => {
  const where = await show(20, 1500);
  await charge("racer", 15_000);
  const ids = [];
  for (let n = 1; n <= 20; n++) ids.push(await hold("racer", where, n));
  const work: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    work.push(payReservation(em(), clock, { userId: "racer", reservationId: ids[i] }).catch((e) => reason(e)));
    work.push(charge("racer", 100));
  }
  const results = await Promise.all(work);
  const paid = results.filter((r) => typeof r === "object" && r !== null && "payment" in (r as object)).length;
  const refused = results.filter((r) => r === "INSUFFICIENT_BALANCE").length;
  expect(paid + refused).toBe(20);
  expect(await getBalance(em(), "racer")).toBe(15_000 + 20 * 100 - paid * 1500);
});

test("pay racing the hold's expiry and a new hold by someone else: exactly one of them gets the seat", async () => {
  const where = await show(10, 1000);
  await charge("slow-payer", 100_000);
  const expiry = clock.now().getTime() + s.deps.config.hold.ttlMs;
  // Two instances whose clocks disagree by 2 ms around the expiry: each believes it is right.
  const payerClock = new ManualClock(expiry - 1);
  const rivalClock = new ManualClock(expiry + 1);
  for (let seat = 1; seat <= 10; seat++) {
    const id = await hold("slow-payer", where, seat);
    const [pay, rival] = await Promise.allSettled([
      payReservation(em(), payerClock, { userId: "slow-payer", reservationId: id }),
      hold("rival", where, seat, rivalClock),
    ]);
    expect([pay.status, rival.status].filter((x) => x === "fulfilled")).toHaveLength(1);
    const st = await state(id);
    if (pay.status === "fulfilled") {
      expect(st).toMatchObject({ status: "CONFIRMED", sold: id, payments: 1 });
      expect(reason((rival as PromiseRejectedResult).reason)).toBe("SEAT_UNAVAILABLE");
    } else {
      expect(reason(pay.reason)).toBe("HOLD_EXPIRED");
      expect(st).toMatchObject({ sold: null, payments: 0, entries: 0 });
    }
  }
});

test("a failure after the debit, before commit, changes nothing", async () => {
  const where = await show(1, 2000);
  await charge("crash", 5000);
  const id = await hold("crash", where, 1);
  const before = await state(id);
  // A deferred constraint trigger fails the transaction at COMMIT, after every
  // statement of the payment (the debit included) has run.
  await em().execute(`create function test_fail_crash_payment() returns trigger language plpgsql as $$
    begin if new.user_id = 'crash' then raise exception 'injected crash after the debit'; end if; return null; end $$`);
  await em().execute(`create constraint trigger test_crash_payment after insert on payment deferrable initially deferred
    for each row execute function test_fail_crash_payment()`);
  try {
    await expect(payReservation(em(), clock, { userId: "crash", reservationId: id })).rejects.toThrow("injected crash");
  } finally {
    await em().execute(`drop trigger test_crash_payment on payment; drop function test_fail_crash_payment()`);
  }
  expect(await getBalance(em(), "crash")).toBe(5000);
  expect(await state(id)).toEqual(before);
  expect(before).toMatchObject({ status: "HELD", held: id, payments: 0, entries: 0 });
});

test("one idempotency key: racing retries get the same payment and one debit", async () => {
  const where = await show(2, 2000);
  await charge("idem-pay", 10_000);
  const id = await hold("idem-pay", where, 1);
  const results = await Promise.all(
    Array.from({ length: 20 }, () => payReservation(em(), clock, { userId: "idem-pay", reservationId: id, idempotencyKey: "order-77" })),
  );
  expect(new Set(results.map((r) => r.payment.id)).size).toBe(1);
  expect(results.every((r) => r.balance === 8000)).toBe(true);
  expect(await getBalance(em(), "idem-pay")).toBe(8000);
  // The key cannot pay a second reservation.
  const other = await hold("idem-pay", where, 2);
  await expect(payReservation(em(), clock, { userId: "idem-pay", reservationId: other, idempotencyKey: "order-77" })).rejects.toMatchObject({
    code: Code.FailedPrecondition,
  });
});

test("charges and payments share one key space: reusing a key across them is IDEMPOTENCY_KEY_REUSED, never ABORTED", async () => {
  const where = await show(12, 1000);
  const charged = await chargeBalance(em(), clock, s.deps.config.wallet, { userId: "keys", amount: 50_000n, idempotencyKey: "k-charge" });
  const id = await hold("keys", where, 1);
  const pay = (reservationId: string, idempotencyKey: string) => payReservation(em(), clock, { userId: "keys", reservationId, idempotencyKey });
  const refusal = (e: unknown) => ({ code: ConnectError.from(e).code, reason: reason(e) });
  const reused = { code: Code.FailedPrecondition, reason: "IDEMPOTENCY_KEY_REUSED" };

  expect(refusal(await pay(id, "k-charge").catch((e) => e))).toEqual(reused);
  expect((await state(id)).status).toBe("HELD");
  expect(await getBalance(em(), "keys")).toBe(50_000);
  const paid = await pay(id, "k-pay");
  for (const amount of [1000n, 5000n]) {
    expect(refusal(await chargeBalance(em(), clock, s.deps.config.wallet, { userId: "keys", amount, idempotencyKey: "k-pay" }).catch((e) => e))).toEqual(
      reused,
    );
  }
  expect(await getBalance(em(), "keys")).toBe(paid.balance);
  // The charge's own retry still answers the charge.
  expect(await chargeBalance(em(), clock, s.deps.config.wallet, { userId: "keys", amount: 50_000n, idempotencyKey: "k-charge" })).toEqual(charged);

  // Racing for one key: whichever commits first keeps it; the other is refused as final.
  for (let seat = 2; seat <= 12; seat++) {
    const key = `race-${seat}`;
    const reservationId = await hold("keys", where, seat);
    const [p, c] = await Promise.allSettled([
      pay(reservationId, key),
      chargeBalance(em(), clock, s.deps.config.wallet, { userId: "keys", amount: 1000n, idempotencyKey: key }),
    ]);
    expect([p, c].filter((x) => x.status === "fulfilled")).toHaveLength(1);
    const loser = [p, c].find((x) => x.status === "rejected") as PromiseRejectedResult;
    expect(refusal(loser.reason)).toEqual(reused);
    expect((await state(reservationId)).status).toBe(p.status === "fulfilled" ? "CONFIRMED" : "HELD");
  }
});

test("refusals change nothing: another user's reservation, insufficient balance, an expired hold", async () => {
  const where = await show(3, 2000);
  await charge("owner", 1000);
  const id = await hold("owner", where, 1);
  const before = await state(id);

  const notMine = await payReservation(em(), clock, { userId: "stranger", reservationId: id }).catch((e) => ConnectError.from(e));
  expect((notMine as ConnectError).code).toBe(Code.NotFound);
  const poor = await payReservation(em(), clock, { userId: "owner", reservationId: id }).catch((e) => ConnectError.from(e));
  expect(reason(poor)).toBe("INSUFFICIENT_BALANCE");
  expect(await state(id)).toEqual(before);
  expect(await getBalance(em(), "owner")).toBe(1000);

  await charge("owner", 5000);
  const late = new ManualClock(clock.now().getTime() + s.deps.config.hold.ttlMs);
  const expired = await payReservation(em(), late, { userId: "owner", reservationId: id }).catch((e) => ConnectError.from(e));
  expect(reason(expired)).toBe("HOLD_EXPIRED");
  expect(await getBalance(em(), "owner")).toBe(6000);
  const unknown = await payReservation(em(), clock, { userId: "owner", reservationId: randomUUID() }).catch((e) => ConnectError.from(e));
  expect((unknown as ConnectError).code).toBe(Code.NotFound);
});

test("the invariant checker catches a balance off its ledger and a payment missing from the ledger", async () => {
  const where = await show(1, 2000);
  await charge("victim", 5000);
  const id = await hold("victim", where, 1);
  await payReservation(em(), clock, { userId: "victim", reservationId: id });
  const e = em();
  await e.execute(`update wallet set balance = balance + 1 where user_id = 'victim'`);
  const found = (await checkInvariants(em())).map((v) => v.rule);
  expect(found).toContain("every balance equals the sum of its ledger");
  await e.execute(`update wallet set balance = balance - 1 where user_id = 'victim'`);
  await e.execute(`delete from wallet_entry where reservation_id = ?`, [id]);
  expect((await checkInvariants(em())).map((v) => v.rule)).toEqual(
    expect.arrayContaining(["every balance equals the sum of its ledger", "every payment debited its amount exactly once in the ledger"]),
  );
  // Put it back so the suite's closing check passes.
  await e.execute(
    `insert into wallet_entry (id, user_id, kind, amount, balance_after, reservation_id, created_at) values (?, 'victim', 'PAYMENT', -2000, 3000, ?, now())`,
    [randomUUID(), id],
  );
});
