/**
 * The per-connection timeouts against the defect they fix: a paused instance
 * holding a seat's row lock made the healthy instance's HoldSeat wait as long
 * as the pause. The real HoldSeat handler (in memory, behind the error
 * interceptor and a stand-in for the queue gate) on the real deps, with the
 * default DB_* settings; the "paused instance" is a second session holding
 * `select ... for update` on the seat's row.
 */
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { LockMode } from "@mikro-orm/postgresql";
import { Client } from "pg";
import type { Counter } from "prom-client";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { createDeps, type Deps } from "../../src/deps";
import { entities } from "../../src/entities";
import { Seat } from "../../src/modules/concert/seat.entity";
import { createPayReservationHandler } from "../../src/modules/payment/payment.routes";
import { registerReservationRoutes } from "../../src/modules/reservation/reservation.routes";
import { openDatabase, type Database } from "../../src/platform/db/database";
import { databaseFault } from "../../src/platform/db/faults";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { createTestDatabase, testConfig, type TestDatabase } from "../harness";
import { asUser, fakeGate } from "../reservation/support";
import { capturingLogger } from "./db-support";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";
const DEFAULT_LOCK_TIMEOUT_MS = 2000;

const captured = capturingLogger();
let db: TestDatabase;
let deps: Deps;
let reservations: ReturnType<typeof createClient<typeof ReservationService>>;
let other: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  // Every DB_* timeout at its default.
  deps = await createDeps(testConfig({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true" }), captured.log, { startQueue: false });
  const transport = createRouterTransport(
    (router) => registerReservationRoutes(router, deps.modules.reservation, createPayReservationHandler(deps.modules.payment)),
    {
      router: { interceptors: [createErrorInterceptor(captured.log, deps.metrics), fakeGate] },
    },
  );
  reservations = createClient(ReservationService, transport);
  other = new Client({ connectionString: db.url });
  await other.connect();
});
afterAll(async () => {
  await other?.end();
  await deps?.close();
  await db?.drop();
});

const hold = (seatNumber: number, userId: string) =>
  reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber }, asUser(userId)).then(
    (res) => ({ ok: res.reservation!, err: undefined }),
    (err) => ({ ok: undefined, err }),
  );

const seatRow = `select s.id from seat s join concert_date d on d.id = s.concert_date_id
                 where d.concert_id = $1 and d.date = $2 and s.seat_number = $3`;

test("every pooled connection starts with the default timeouts: statement 5s, lock 2s, idle in transaction 10s", async () => {
  let arrived = 0;
  let allThere!: () => void;
  const together = new Promise<void>((r) => (allThere = r));
  const settings = await Promise.all(
    [1, 2, 3].map(() =>
      deps.orm.em.fork().transactional(async (tx) => {
        const [row] = await tx.execute(
          `select pg_backend_pid() as pid, current_setting('statement_timeout') as statement,
                  current_setting('lock_timeout') as lock, current_setting('idle_in_transaction_session_timeout') as idle`,
        );
        // Held open until all three have answered, so that three connections answer.
        if (++arrived === 3) allThere();
        await together;
        return row as { pid: number; statement: string; lock: string; idle: string };
      }),
    ),
  );
  expect(new Set(settings.map((s) => s.pid)).size).toBe(3);
  for (const s of settings) expect(s).toMatchObject({ statement: "5s", lock: "2s", idle: "10s" });
});

test("HoldSeat on a seat whose row another session holds is UNAVAILABLE LOCK_TIMEOUT after about DB_LOCK_TIMEOUT, and wins once it is free", async () => {
  await other.query("begin");
  await other.query(`${seatRow} for update of s`, [CONCERT, DATE, 7]);
  const started = Date.now();
  let refused: Awaited<ReturnType<typeof hold>>;
  try {
    refused = await hold(7, "alice");
  } finally {
    await other.query("rollback");
  }
  const waited = Date.now() - started;
  expect(refused.err?.code).toBe(Code.Unavailable);
  expect(errorReason(refused.err)).toBe("LOCK_TIMEOUT");
  expect(waited).toBeGreaterThanOrEqual(DEFAULT_LOCK_TIMEOUT_MS - 100);
  expect(waited).toBeLessThan(DEFAULT_LOCK_TIMEOUT_MS + 3000);

  expect(captured.lines.filter((l) => l.msg === "database row lock wait timed out")).toEqual([
    expect.objectContaining({
      level: 40,
      reason: "LOCK_TIMEOUT",
      kind: "55P03 lock_not_available",
      procedure: "/boxoffice.reservation.v1.ReservationService/HoldSeat",
    }),
  ]);
  expect(captured.lines.filter((l) => l.level >= 50)).toEqual([]);
  const counter = deps.metrics.registry.getSingleMetric("dependency_unavailable_total") as Counter;
  expect((await counter.get()).values).toEqual([expect.objectContaining({ labels: { dependency: "database", reason: "LOCK_TIMEOUT" }, value: 1 })]);

  // The refused hold wrote nothing: the seat is free for the retry.
  const retried = await hold(7, "alice");
  expect(retried.ok?.status).toBe(ReservationStatus.HELD);
});

test("the defect, with the timeouts off (0): the same HoldSeat waits for as long as the row stays locked", async () => {
  const untimed = await openDatabase(
    testConfig({ DATABASE_URL: db.url, DB_LOCK_TIMEOUT: "0", DB_STATEMENT_TIMEOUT: "0", DB_IDLE_IN_TRANSACTION_TIMEOUT: "0" }).database,
    entities,
    createLogger("silent"),
  );
  const transport = createRouterTransport(
    (router) =>
      registerReservationRoutes(router, { ...deps.modules.reservation, em: () => untimed.orm.em.fork() }, createPayReservationHandler(deps.modules.payment)),
    {
      router: { interceptors: [createErrorInterceptor(createLogger("silent")), fakeGate] },
    },
  );
  const untimedReservations = createClient(ReservationService, transport);
  try {
    await other.query("begin");
    await other.query(`${seatRow} for update of s`, [CONCERT, DATE, 9]);
    const started = Date.now();
    const call = untimedReservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 9 }, asUser("carol"));
    await new Promise((r) => setTimeout(r, 3000));
    await other.query("rollback");
    const res = await call;
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(res.reservation?.status).toBe(ReservationStatus.HELD);
  } finally {
    await untimed.close();
  }
});

describe("a paused instance", () => {
  let paused: Database;
  beforeAll(async () => {
    // The other instance, configured alike but for a short idle-in-transaction timeout.
    paused = await openDatabase(testConfig({ DATABASE_URL: db.url, DB_IDLE_IN_TRANSACTION_TIMEOUT: "500ms" }).database, entities, createLogger("silent"));
  });
  afterAll(() => paused?.close());

  test("holding a seat's row inside a transaction loses its session after DB_IDLE_IN_TRANSACTION_TIMEOUT, and HoldSeat gets the seat", async () => {
    let resume!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const stalled = paused.orm.em
      .fork()
      .transactional(async (tx) => {
        const seat = await tx.findOneOrFail(Seat, { concertDate: { concert: CONCERT, date: DATE }, seatNumber: 8 }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        locked();
        // Paused (a stop-the-world pause, a debugger, a lost network): the transaction sits idle with the lock.
        await new Promise<void>((r) => (resume = r));
        seat.price += 1;
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    await isLocked;
    const started = Date.now();
    const held = await hold(8, "bob");
    const waited = Date.now() - started;
    expect(held.err).toBeUndefined();
    expect(held.ok?.status).toBe(ReservationStatus.HELD);
    // The server ended the idle session at 0.5 s and with it the lock, before our 2 s lock timeout.
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(DEFAULT_LOCK_TIMEOUT_MS);

    // Woken up, the paused instance's transaction fails as a lost connection, and writes nothing.
    resume();
    const err = await stalled;
    expect(databaseFault(err)?.reason).toBe("DATABASE_UNAVAILABLE");
    const { rows } = await other.query(
      `select s.price from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = $1 and d.date = $2 and s.seat_number = 8`,
      [CONCERT, DATE],
    );
    expect(BigInt(rows[0].price)).toBe(held.ok!.amount);
  });
});
