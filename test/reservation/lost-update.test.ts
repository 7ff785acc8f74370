/**
 * Rows changed without a lock are written through MikroORM's versioned
 * UPDATEs: a writer that read a row before another transaction changed it
 * fails with OptimisticLockError, which the call pipeline answers
 * ABORTED/CONCURRENT_UPDATE, instead of overwriting the newer row. The races
 * are real: a trigger created here sleeps inside the first writer's UPDATE or
 * INSERT (holding its row lock, uncommitted) while the second reads and writes.
 */
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { OptimisticLockError } from "@mikro-orm/core";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { createPayReservationHandler } from "../../src/modules/payment/payment.routes";
import { payReservation } from "../../src/modules/payment/payment.service";
import { registerReservationRoutes } from "../../src/modules/reservation/reservation.routes";
import { holdSeat } from "../../src/modules/reservation/seat-hold.service";
import { Wallet } from "../../src/modules/wallet/wallet.entity";
import { chargeBalance, getBalance } from "../../src/modules/wallet/wallet.service";
import { ManualClock } from "../../src/platform/clock";
import { createLocalLocks } from "../../src/platform/locks";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { asUser, CONCERT, DATE, fakeGate, openSeededDatabase, quietLog, rejection, routeDeps, sleep, type SeededDatabase } from "./support";

let s: SeededDatabase;
const clock = new ManualClock();
const em = () => s.orm.em.fork();

let reservations: ReturnType<typeof createClient<typeof ReservationService>>;

beforeAll(async () => {
  s = await openSeededDatabase();
  const deps = routeDeps(s, clock);
  const transport = createRouterTransport((router) => registerReservationRoutes(router, deps, createPayReservationHandler(deps)), {
    router: { interceptors: [createErrorInterceptor(quietLog), fakeGate] },
  });
  reservations = createClient(ReservationService, transport);
  await em().execute(`create function test_slow_write() returns trigger language plpgsql as $$
    begin if new.user_id like 'slow-%' then perform pg_sleep(0.6); end if; return new; end $$`);
});
afterEach(async () => {
  await em().execute(`drop trigger if exists test_slow_write on reservation; drop trigger if exists test_slow_write on payment`);
  expect(await checkInvariants(em())).toEqual([]);
});
afterAll(() => s?.close());

/** Resolves once a session of this database sleeps inside the trigger (so it holds its row lock, uncommitted). */
async function someoneSleeping(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const rows = await em().execute(`select 1 from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep'`);
    if (rows.length) return;
    await sleep(5);
  }
  throw new Error("no session reached the trigger's sleep");
}

async function heldSeat(userId: string, seatNumber: number): Promise<string> {
  const { reservation } = await holdSeat(em(), createLocalLocks(), clock, s.config.hold, { userId, concertId: CONCERT, date: DATE, seatNumber });
  return reservation.id;
}

async function row(id: string) {
  const [r] = await em().execute<{ status: string; held: string | null; sold: string | null; version: number }[]>(
    `select r.status, s.held_by_reservation_id as held, s.sold_reservation_id as sold, r.version from reservation r join seat s on s.id = r.seat_id where r.id = ?`,
    [id],
  );
  return r;
}

test("a cancel that read the hold before a payment committed is ABORTED/CONCURRENT_UPDATE, not a cancelled sale", async () => {
  const userId = "slow-payer";
  await chargeBalance(em(), clock, s.config.wallet, { userId, amount: 500_000n });
  const id = await heldSeat(userId, 1);
  // The payment sleeps while inserting its row: reservation and seat are locked, nothing is committed yet.
  await em().execute(`create trigger test_slow_write before insert on payment for each row execute function test_slow_write()`);
  const paying = payReservation(em(), clock, { userId, reservationId: id });
  await someoneSleeping();
  // The cancel reads the reservation as HELD (the payment is not committed), then its versioned UPDATE waits for the row and matches nothing.
  const cancel = await rejection(reservations.cancelHold({ reservationId: id }, asUser(userId)));
  const paid = await paying;
  expect(cancel).toEqual({ code: Code.Aborted, reason: "CONCURRENT_UPDATE" });
  expect(paid.reservation.status).toBe("CONFIRMED");
  expect(await row(id)).toMatchObject({ status: "CONFIRMED", held: null, sold: id });
  // The retry sees what won.
  expect(await rejection(reservations.cancelHold({ reservationId: id }, asUser(userId)))).toEqual({
    code: Code.FailedPrecondition,
    reason: "RESERVATION_NOT_HELD",
  });
});

test("two cancels of one hold: the one that read the older version is ABORTED/CONCURRENT_UPDATE", async () => {
  const userId = "slow-canceller";
  const id = await heldSeat(userId, 2);
  await em().execute(`create trigger test_slow_write before update on reservation for each row execute function test_slow_write()`);
  const first = reservations.cancelHold({ reservationId: id }, asUser(userId));
  await someoneSleeping();
  const second = await rejection(reservations.cancelHold({ reservationId: id }, asUser(userId)));
  expect((await first).reservation?.reservationId).toBe(id);
  expect(second).toEqual({ code: Code.Aborted, reason: "CONCURRENT_UPDATE" });
  expect(await row(id)).toMatchObject({ status: "CANCELLED", held: null, sold: null });
});

test("two entity managers change one wallet: the flush of the older read fails with OptimisticLockError and changes nothing", async () => {
  const userId = "two-readers";
  await chargeBalance(em(), clock, s.config.wallet, { userId, amount: 10_000n });
  const a = em();
  const b = em();
  const wa = await a.findOneOrFail(Wallet, { userId });
  const wb = await b.findOneOrFail(Wallet, { userId });
  a.persist(wa.credit(1000, s.config.wallet.balanceMax, clock.now()));
  await a.flush();
  b.persist(wb.credit(2000, s.config.wallet.balanceMax, clock.now()));
  await expect(b.flush()).rejects.toBeInstanceOf(OptimisticLockError);
  // Without the version the second flush would have written 12,000 over 11,000.
  expect(await getBalance(em(), userId)).toBe(11_000);
  const [{ entries }] = await em().execute<{ entries: string }[]>(`select count(*) as entries from wallet_entry where user_id = ?`, [userId]);
  expect(Number(entries)).toBe(2);
});
