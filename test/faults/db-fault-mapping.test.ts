/**
 * The mapping table, row by row, with errors as the driver really raises
 * them: a real PostgreSQL timing out a statement, a lock wait and an idle
 * transaction, pg_terminate_backend, a role over its connection limit, a
 * port nobody listens on, an exhausted pool, and stand-in servers answering
 * with the FATAL messages PostgreSQL sends while starting up, recovering or
 * full. Each failure runs inside a call through the error interceptor; the
 * row names the status the caller gets, and what the raw error looked like.
 */
import { randomBytes } from "node:crypto";
import { Code, type ConnectError } from "@connectrpc/connect";
import { DriverException, LockMode, MikroORM } from "@mikro-orm/postgresql";
import { Client } from "pg";
import { Registry, type Counter } from "prom-client";
import { seedDemoCatalog } from "../../src/modules/concert/demo-catalog";
import { Seat } from "../../src/modules/concert/seat.entity";
import { entities } from "../../src/entities";
import { openDatabase, ormOptions, type Database } from "../../src/platform/db/database";
import { databaseFault } from "../../src/platform/db/faults";
import { errorReason } from "../../src/platform/errors";
import { createTestDatabase, freePort, testConfig, type TestDatabase } from "../harness";
import { capturingLogger, eventually, fakePostgres, interceptedCalls, type FakeBehaviour } from "./db-support";

const STATEMENT_TIMEOUT_MS = 1000;
const LOCK_TIMEOUT_MS = 300;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 500;

const captured = capturingLogger();
const registry = new Registry();
const calls = interceptedCalls(captured.log, { registry });
let db: TestDatabase;
let database: Database;
let admin: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig({
    DATABASE_URL: db.url,
    DB_POOL_MAX: "4",
    DB_STATEMENT_TIMEOUT: `${STATEMENT_TIMEOUT_MS}ms`,
    DB_LOCK_TIMEOUT: `${LOCK_TIMEOUT_MS}ms`,
    DB_IDLE_IN_TRANSACTION_TIMEOUT: `${IDLE_IN_TRANSACTION_TIMEOUT_MS}ms`,
  });
  database = await openDatabase(config.database, entities, captured.log);
  await seedDemoCatalog(database.orm.em.fork());
  admin = new Client({ connectionString: db.url });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await database?.close();
  await db?.drop();
});

const em = () => database.orm.em.fork();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  /** What the caller got. */
  err?: ConnectError;
  /** What the ORM or the driver threw inside the call. */
  raw: unknown;
  ms: number;
}

/**
 * Runs `work` as a call and keeps the error it threw before the interceptor
 * translated it; returns once the work has ended too (a client whose
 * deadline passed stops waiting before that).
 */
async function failingCall(work: () => Promise<unknown>, callOptions?: { timeoutMs?: number }): Promise<Outcome> {
  let raw: unknown;
  let ended!: Promise<unknown>;
  const started = Date.now();
  const err = await calls.call(() => {
    ended = work().catch((e: unknown) => {
      raw = e;
      throw e;
    });
    return ended;
  }, callOptions);
  const ms = Date.now() - started;
  await ended?.catch(() => undefined);
  return { err, raw, ms };
}

const unavailable = (reason: string) => ({ code: Code.Unavailable, reason });
const verdict = (o: Outcome) => ({ code: o.err?.code, reason: o.err && errorReason(o.err) });
const counted = async (reason: string) =>
  ((await (registry.getSingleMetric("dependency_unavailable_total") as Counter | undefined)?.get())?.values ?? []).find(
    (v) => v.labels.reason === reason && v.labels.dependency === "database",
  )?.value ?? 0;

/** A second session holding a row lock on seat 1, as a paused instance would. */
async function withSeatLocked<T>(body: () => Promise<T>): Promise<T> {
  await admin.query("begin");
  await admin.query("select id from seat where id = 1 for update");
  try {
    return await body();
  } finally {
    await admin.query("rollback");
  }
}

/** An ORM of its own pointed at `url`, which connects only when first used. */
async function ormAt(url: string, pool?: { max: number; acquireTimeoutMillis: number }): Promise<MikroORM> {
  const options = ormOptions(entities, { clientUrl: url }, pool?.max ?? 1, { log: captured.log });
  return MikroORM.init({ ...options, connect: false, ...(pool && { pool: { ...options.pool, ...pool } }) });
}

describe("statement, lock and idle-in-transaction timeouts", () => {
  test("a statement past statement_timeout (57014) is UNAVAILABLE DATABASE_TIMEOUT, after about the timeout", async () => {
    const before = await counted("DATABASE_TIMEOUT");
    const o = await failingCall(() => em().execute("select pg_sleep(10)"));
    expect(verdict(o)).toEqual(unavailable("DATABASE_TIMEOUT"));
    expect(o.raw).toBeInstanceOf(DriverException);
    expect(o.raw).toMatchObject({ code: "57014", message: expect.stringMatching(/canceling statement due to statement timeout$/) });
    expect(o.ms).toBeGreaterThanOrEqual(STATEMENT_TIMEOUT_MS - 50);
    expect(o.ms).toBeLessThan(STATEMENT_TIMEOUT_MS + 3000);
    expect(await counted("DATABASE_TIMEOUT")).toBe(before + 1);
  });

  test("the same statement under a shorter RPC deadline ends DEADLINE_EXCEEDED: the deadline caused it", async () => {
    const seenBefore = calls.seen.length;
    const o = await failingCall(() => em().execute("select pg_sleep(10)"), { timeoutMs: 200 });
    expect(o.err?.code).toBe(Code.DeadlineExceeded);
    // The server side answers when the statement gives up; the client stopped waiting at its deadline.
    await eventually(() => calls.seen.length > seenBefore);
    expect(calls.seen[seenBefore].code).toBe(Code.DeadlineExceeded);
    expect(o.raw).toMatchObject({ code: "57014" });
  });

  test("SELECT ... FOR UPDATE of a row another session holds fails after lock_timeout (55P03): UNAVAILABLE LOCK_TIMEOUT", async () => {
    const o = await withSeatLocked(() =>
      failingCall(() => em().transactional((tx) => tx.findOneOrFail(Seat, { id: 1 }, { lockMode: LockMode.PESSIMISTIC_WRITE }))),
    );
    expect(verdict(o)).toEqual(unavailable("LOCK_TIMEOUT"));
    expect(o.raw).toBeInstanceOf(DriverException);
    expect(o.raw).toMatchObject({ code: "55P03", message: expect.stringMatching(/canceling statement due to lock timeout$/) });
    expect(o.ms).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS - 50);
    // Without lock_timeout it would wait as long as the other session holds the row: until the call ends.
    expect(o.ms).toBeLessThan(LOCK_TIMEOUT_MS + 3000);
  });

  test("the unit of work's UPDATE of a locked row fails the same way", async () => {
    const o = await withSeatLocked(() =>
      failingCall(() =>
        em().transactional(async (tx) => {
          const seat = await tx.findOneOrFail(Seat, { id: 1 });
          seat.price += 1;
        }),
      ),
    );
    expect(verdict(o)).toEqual(unavailable("LOCK_TIMEOUT"));
    expect(o.raw).toMatchObject({ code: "55P03" });
    expect(o.ms).toBeLessThan(LOCK_TIMEOUT_MS + 3000);
  });

  test("a transaction left idle past idle_in_transaction_session_timeout (25P03) loses its session: UNAVAILABLE DATABASE_UNAVAILABLE", async () => {
    const o = await failingCall(() =>
      em().transactional(async (tx) => {
        await tx.findOneOrFail(Seat, { id: 2 });
        await sleep(IDLE_IN_TRANSACTION_TIMEOUT_MS + 500);
        await tx.findOneOrFail(Seat, { id: 3 });
      }),
    );
    expect(verdict(o)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
    // The server's 25P03 arrives while the session is idle, as an 'error' on the connection; the next statement hears only this.
    expect((o.raw as Error).message).toMatch(/ - Client has encountered a connection error and is not queryable$/);
    expect(await em().findOneOrFail(Seat, { id: 3 })).toBeDefined();
  });
});

describe("connections lost and refused", () => {
  test("pg_terminate_backend during a statement (57P01 admin_shutdown) is UNAVAILABLE DATABASE_UNAVAILABLE", async () => {
    const running = failingCall(() => em().execute("select pg_sleep(5) as terminated_here"));
    // Once the statement runs (well within statement_timeout), end its session.
    for (let ended = 0; ended === 0; await sleep(10)) {
      const { rowCount } = await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where query like '%terminated_here%' and state = 'active' and pid <> pg_backend_pid()",
      );
      ended = rowCount ?? 0;
    }
    const o = await running;
    expect(verdict(o)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
    expect(o.raw).toBeInstanceOf(DriverException);
    expect(o.raw).toMatchObject({ code: "57P01", severity: "FATAL" });
  });

  test("pg_terminate_backend of a session inside a transaction: the next statement of the transaction is UNAVAILABLE", async () => {
    const o = await failingCall(() =>
      em().transactional(async (tx) => {
        const [{ pid }] = await tx.execute<{ pid: number }[]>("select pg_backend_pid() as pid");
        await admin.query("select pg_terminate_backend($1)", [pid]);
        await sleep(100);
        await tx.findOneOrFail(Seat, { id: 4 });
      }),
    );
    expect(verdict(o)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
    expect(databaseFault(o.raw)).toBeDefined();
    // The pool replaces the lost connection.
    expect(await em().findOneOrFail(Seat, { id: 4 })).toBeDefined();
  });

  test("a role over its connection limit (53300 too_many_connections, real) is UNAVAILABLE DATABASE_UNAVAILABLE", async () => {
    const role = `r_${randomBytes(4).toString("hex")}`;
    await admin.query(`create role ${role} login connection limit 0`);
    const orm = await ormAt(db.url.replace("postgres@", `${role}@`));
    try {
      const find = await failingCall(() => orm.em.fork().findOne(Seat, { id: 1 }));
      expect(verdict(find)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(find.raw).toMatchObject({ code: "53300", message: expect.stringMatching(/too many connections for role/) });
      // em.transactional fails at BEGIN, where MikroORM does not wrap the driver's error.
      const tx = await failingCall(() => orm.em.fork().transactional((t) => t.findOne(Seat, { id: 1 })));
      expect(verdict(tx)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(tx.raw).not.toBeInstanceOf(DriverException);
      expect(tx.raw).toMatchObject({ code: "53300" });
    } finally {
      await orm.close(true);
      await admin.query(`drop role ${role}`);
    }
  });

  test("a port nobody listens on (ECONNREFUSED) is UNAVAILABLE DATABASE_UNAVAILABLE, plain query or transaction", async () => {
    const orm = await ormAt(`postgresql://postgres@127.0.0.1:${await freePort()}/none`);
    try {
      const find = await failingCall(() => orm.em.fork().findOne(Seat, { id: 1 }));
      expect(verdict(find)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(find.raw).toBeInstanceOf(DriverException);
      expect(find.raw).toMatchObject({ code: "ECONNREFUSED", errno: -111 });
      const tx = await failingCall(() => orm.em.fork().transactional((t) => t.findOne(Seat, { id: 1 })));
      expect(verdict(tx)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(tx.raw).not.toBeInstanceOf(DriverException);
      expect(tx.raw).toMatchObject({ code: "ECONNREFUSED", syscall: "connect" });
    } finally {
      await orm.close(true);
    }
  });

  test("an exhausted pool (knex acquire timeout) is UNAVAILABLE DATABASE_UNAVAILABLE", async () => {
    // Long enough for the first connection to open on a busy machine; the second call waits it out in full.
    const orm = await ormAt(db.url, { max: 1, acquireTimeoutMillis: 1500 });
    let release!: () => void;
    const holding = orm.em.fork().transactional(async (t) => {
      await t.findOne(Seat, { id: 1 });
      await new Promise<void>((r) => (release = r));
    });
    try {
      await eventually(() => release !== undefined);
      const o = await failingCall(() => orm.em.fork().findOne(Seat, { id: 2 }));
      expect(verdict(o)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(databaseFault(o.raw)?.kind).toBe("pool acquire timeout");
      expect((o.raw as Error).message).toMatch(/Knex: Timeout acquiring a connection/);
    } finally {
      release?.();
      await holding;
      await orm.close(true);
    }
  });
});

describe("what a server that is going, coming or full answers (stand-ins on the wire)", () => {
  const rows: Array<[string, FakeBehaviour, string | RegExp]> = [
    ["57P03 the database system is starting up", { fatal: { code: "57P03", message: "the database system is starting up" } }, "57P03 cannot_connect_now"],
    [
      "57P02 crash of another server process",
      { fatal: { code: "57P02", message: "terminating connection because of crash of another server process" } },
      "57P02 crash_shutdown",
    ],
    ["57P01 the database system is shutting down", { fatal: { code: "57P01", message: "the database system is shutting down" } }, "57P01 admin_shutdown"],
    ["08006 connection failure", { fatal: { code: "08006", message: "connection failure" } }, "08006 connection_exception"],
    ["53300 sorry, too many clients already", { fatal: { code: "53300", message: "sorry, too many clients already" } }, "53300 too_many_connections"],
    ["a reset connection (ECONNRESET)", "reset", "ECONNRESET"],
    ["a server hanging up (Connection terminated unexpectedly)", "hang-up", "connection terminated"],
    [
      "a connection dropped at BEGIN (knex: Transaction query already complete)",
      "drop-on-begin",
      /^(transaction lost its connection|connection terminated|connection lost)$/,
    ],
  ];

  test.each(rows)("%s is UNAVAILABLE DATABASE_UNAVAILABLE", async (_name, behaviour, kind) => {
    const fake = await fakePostgres(behaviour);
    const orm = await ormAt(fake.url);
    try {
      const o = await failingCall(() => orm.em.fork().transactional((t) => t.findOne(Seat, { id: 1 })));
      expect(verdict(o)).toEqual(unavailable("DATABASE_UNAVAILABLE"));
      expect(databaseFault(o.raw)?.kind).toMatch(kind);
    } finally {
      await orm.close(true);
      await fake.close();
    }
  });

  test("a connection dropped at BEGIN surfaces as knex's 'Transaction query already complete'", async () => {
    const fake = await fakePostgres("drop-on-begin");
    const orm = await ormAt(fake.url);
    try {
      const o = await failingCall(() => orm.em.fork().transactional((t) => t.findOne(Seat, { id: 1 })));
      expect((o.raw as Error).message).toMatch(/Transaction query already complete/);
    } finally {
      await orm.close(true);
      await fake.close();
    }
  });
});

describe("what stays INTERNAL", () => {
  test.each([
    ["a missing table (42P01)", "select * from no_such_table", "42P01"],
    ["a syntax error (42601)", "selec 1", "42601"],
    ["a check constraint (23514)", "update seat set price = -1 where id = 1", "23514"],
  ])("%s is a bug: INTERNAL, logged once with its stack", async (_name, sql, code) => {
    const before = captured.lines.length;
    const o = await failingCall(() => em().execute(sql));
    expect(o.err?.code).toBe(Code.Internal);
    expect(o.raw).toMatchObject({ code });
    expect(databaseFault(o.raw)).toBeUndefined();
    expect(captured.lines.slice(before).filter((l) => l.msg === "unexpected failure")).toHaveLength(1);
  });
});

test("the warn lines name the kind of failure and carry no SQL and no values", async () => {
  const warns = captured.lines.filter((l) => l.level === 40);
  expect(warns.map((l) => l.msg)).toEqual(expect.arrayContaining(["database unavailable", "database statement timed out", "database row lock wait timed out"]));
  for (const w of warns.filter((l) => l.dependency === "database")) {
    expect(typeof w.kind).toBe("string");
    expect(JSON.stringify(w)).not.toMatch(/select|update |pg_sleep|terminated_here|"err"/i);
  }
  expect(captured.lines.some((l) => l.msg === "unexpected failure" && /Timeout acquiring|ECONNREFUSED|57P0|55P03|57014/.test(JSON.stringify(l)))).toBe(false);
});
