/**
 * What the connection pool notices on its own, between calls: idle
 * connections the server ends (a shutdown, pg_terminate_backend) raise
 * 'error' on the driver's client, and knex prints "Connection Error: ..."
 * with console.log when it next checks one out. Both go to the JSON log,
 * once per window, and the process lives on.
 */
import { MikroORM } from "@mikro-orm/postgresql";
import { Client } from "pg";
import { Seat } from "../../src/modules/concert/seat.entity";
import { ManualClock } from "../../src/platform/clock";
import { entities } from "../../src/entities";
import { ormOptions } from "../../src/platform/db/database";
import { createPoolHooks, sessionSettings } from "../../src/platform/db/pool-hooks";
import { createTestDatabase, type TestDatabase } from "../harness";
import { capturingLogger, eventually } from "./db-support";

const captured = capturingLogger();
const clock = new ManualClock();
let db: TestDatabase;
let orm: MikroORM;
let admin: Client;
const printed: unknown[][] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const options = ormOptions(entities, { clientUrl: db.url }, 3, {
    log: captured.log,
    clock,
    timeouts: { statementMs: 5000, lockMs: 2000, idleInTransactionMs: 10_000 },
  });
  orm = await MikroORM.init(options);
  await orm.getMigrator().up();
  admin = new Client({ connectionString: db.url });
  await admin.connect();
  jest.spyOn(console, "log").mockImplementation((...args: unknown[]) => void printed.push(args));
});
afterAll(async () => {
  jest.restoreAllMocks();
  await admin?.end();
  await orm?.close(true);
  await db?.drop();
});

/** Opens `n` pooled connections at once and leaves them idle in the pool. */
async function warmPool(n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => orm.em.fork().transactional((tx) => tx.execute("select pg_sleep(0.05)"))));
}

/** Ends every other session of the database and waits until they are gone and the pool has heard of it. */
async function terminateAll(): Promise<void> {
  const others = "from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()";
  await admin.query(`select pg_terminate_backend(pid) ${others}`);
  for (;;) {
    const { rows } = await admin.query(`select count(*)::int as n ${others}`);
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  // The sessions' FATAL messages and closed sockets, through the event loop.
  await new Promise((r) => setTimeout(r, 100));
}
const lost = () => captured.lines.filter((l) => l.msg === "database connection lost");

test("idle connections ended by the server: one line in the JSON log, nothing printed, and the pool serves on", async () => {
  await warmPool(3);
  await terminateAll();
  await eventually(() => lost().length > 0);
  // Each query checks out a connection knex knows is dead (its "Connection Error" warning), then a new one.
  for (let i = 0; i < 3; i++) expect(await orm.em.fork().count(Seat)).toBe(0);

  expect(lost()).toEqual([expect.objectContaining({ level: 40, dependency: "database", kind: "57P01 admin_shutdown", suppressed: 0 })]);
  expect(printed).toEqual([]);
});

test("past the window, the next loss is logged again with the count held back", async () => {
  await warmPool(3);
  clock.advance(10_000);
  await terminateAll();
  await eventually(() => lost().length > 1);
  for (let i = 0; i < 3; i++) await orm.em.fork().count(Seat);
  expect(lost()).toHaveLength(2);
  // The first burst's other connections (3 'error' events, 3 knex warnings), held back in the first window.
  expect(lost()[1].suppressed).toBeGreaterThan(0);
  expect(printed).toEqual([]);
});

test("knex's other warnings reach the JSON log too, and its query debugging never does", () => {
  const { knexLog } = createPoolHooks({ log: captured.log, clock });
  knexLog.warn("The pool has already been initialized");
  knexLog.debug({ sql: "select secret", bindings: ["hunter2"] });
  expect(captured.lines.filter((l) => l.source === "knex")).toEqual([expect.objectContaining({ level: 40, msg: "The pool has already been initialized" })]);
  expect(JSON.stringify(captured.lines)).not.toContain("hunter2");
});

test("session settings: one SET per timeout, 0 left out", () => {
  expect(sessionSettings({ statementMs: 5000, lockMs: 2000, idleInTransactionMs: 10_000 })).toBe(
    "set statement_timeout = 5000; set lock_timeout = 2000; set idle_in_transaction_session_timeout = 10000",
  );
  expect(sessionSettings({ statementMs: 0, lockMs: 2000, idleInTransactionMs: 0 })).toBe("set lock_timeout = 2000");
  expect(sessionSettings({ statementMs: 0, lockMs: 0, idleInTransactionMs: 0 })).toBeUndefined();
  expect(sessionSettings(undefined)).toBeUndefined();
});
