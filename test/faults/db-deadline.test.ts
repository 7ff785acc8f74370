/**
 * The call's deadline reaches the database: a transaction begun with less
 * time left than DB_STATEMENT_TIMEOUT gets no more than what is left, so a
 * client that gave up does not leave a backend waiting on our side.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client } from "pg";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { withCallDeadline } from "../../src/platform/db/deadline";
import { entities } from "../../src/entities";
import { openDatabase, type Database } from "../../src/platform/db/database";
import { createLogger } from "../../src/platform/logger";
import { requestTimeoutMs } from "../../src/rpc/deadline";
import { createTestDatabase, startTestServer, testConfig, testRedisUrl, type TestDatabase, type TestServer } from "../harness";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";

test("the client's timeout is read from grpc-timeout and connect-timeout-ms", () => {
  const h = (k: string, v: string) => new Headers({ [k]: v });
  expect(requestTimeoutMs(h("grpc-timeout", "1500m"))).toBe(1500);
  expect(requestTimeoutMs(h("grpc-timeout", "2S"))).toBe(2000);
  expect(requestTimeoutMs(h("grpc-timeout", "1M"))).toBe(60_000);
  expect(requestTimeoutMs(h("grpc-timeout", "500000u"))).toBe(500);
  expect(requestTimeoutMs(h("connect-timeout-ms", "750"))).toBe(750);
  expect(requestTimeoutMs(h("grpc-timeout", "soon"))).toBeUndefined();
  expect(requestTimeoutMs(new Headers())).toBeUndefined();
});

describe("a transaction under a call's deadline", () => {
  let tdb: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    db = await openDatabase(testConfig({ DATABASE_URL: tdb.url }).database, entities, createLogger("silent"));
  });
  afterAll(async () => {
    await db?.close();
    await tdb?.drop();
  });

  const sleepInTransaction = () => db.orm.em.fork().transactional((tx) => tx.execute("select pg_sleep(3)"));

  test("ends when the call's time is up, not at DB_STATEMENT_TIMEOUT", async () => {
    const started = Date.now();
    const err = await withCallDeadline(Date.now() + 300, sleepInTransaction).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).toBe("57014"); // query_canceled by the statement timeout we set
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("without a deadline the connection's own timeout applies", async () => {
    const started = Date.now();
    await db.orm.em.fork().transactional((tx) => tx.execute("select pg_sleep(0.6)"));
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
  });
});

describe("through the server", () => {
  let tdb: TestDatabase;
  let s: TestServer;
  let other: Client;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    s = await startTestServer(
      {
        DATABASE_URL: tdb.url,
        REDIS_URLS: testRedisUrl(),
        QUEUE_REDIS_PREFIX: `deadline:${randomBytes(4).toString("hex")}:`,
        SEED_DEMO_CATALOG: "true",
        // Long enough that only the call's deadline can explain an early end.
        DB_LOCK_TIMEOUT: "20s",
        DB_STATEMENT_TIMEOUT: "30s",
      },
      { startQueue: false },
    );
    other = new Client({ connectionString: tdb.url });
    await other.connect();
  });
  afterAll(async () => {
    await other?.end();
    await s?.stop();
    await tdb?.drop();
  });

  const waitingOnLocks = async () =>
    Number(
      (await other.query("select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()"))
        .rows[0].count,
    );

  test("a HoldSeat whose client gave up does not keep waiting on a locked seat row", async () => {
    const transport = createGrpcTransport({ baseUrl: s.baseUrl });
    const queue = createClient(QueueService, transport);
    const reservations = createClient(ReservationService, transport);
    const { ticket } = await queue.issueToken({ userId: "impatient" });
    await s.deps.queue.tick();
    const headers = { "x-queue-token": ticket!.token };

    // Another session (a paused instance) holds the seat's row lock.
    await other.query("begin");
    await other.query(
      "select s.id from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = $1 and d.date = $2 and s.seat_number = 9 for update of s",
      [CONCERT, DATE],
    );
    try {
      const err = await reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 9 }, { headers, timeoutMs: 400 }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.DeadlineExceeded);
      // The server's backend gave up with its client, long before DB_LOCK_TIMEOUT.
      const deadline = Date.now() + 3000;
      while ((await waitingOnLocks()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await waitingOnLocks()).toBe(0);
    } finally {
      await other.query("rollback");
    }
  });
});
