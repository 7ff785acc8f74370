/**
 * PostgreSQL restarted under a running server, as an operator (or a crash)
 * would: the real server in this process on a PostgreSQL of the suite's own,
 * called over Connect and gRPC while the database stops, is away, recovers
 * and is back. What callers get, what the log says, and that nothing is
 * written outside the JSON log.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Client as PgClient } from "pg";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { createDeps, type Deps } from "../../src/deps";
import { errorReason } from "../../src/platform/errors";
import { createServer, type AppServer } from "../../src/server";
import { testConfig } from "../harness";
import { createDatabase } from "../harness/services";
import { capturingLogger, startStoppablePostgres, type StoppablePostgres } from "./db-support";

const captured = capturingLogger();
let pg: StoppablePostgres;
let deps: Deps;
let server: AppServer;
let clients: Array<[string, Client<typeof ConcertService>]>;
const consoleCalls: unknown[][] = [];
const consoleMethods = ["log", "info", "warn", "error", "debug"] as const;
let restoreConsole: Array<() => void> = [];

beforeAll(async () => {
  pg = await startStoppablePostgres();
  const url = await createDatabase(pg.adminUrl, "boxoffice");
  // No catalog cache: every ListConcerts must reach the database whose outage the test watches.
  deps = await createDeps(testConfig({ DATABASE_URL: url, SEED_DEMO_CATALOG: "true", DB_POOL_MAX: "5", CATALOG_CACHE_TTL: "0" }), captured.log, {
    startQueue: false,
  });
  server = createServer(deps);
  const port = await server.listen(0, "127.0.0.1");
  const baseUrl = `http://127.0.0.1:${port}`;
  clients = [
    ["Connect", createClient(ConcertService, createConnectTransport({ baseUrl, httpVersion: "1.1" }))],
    ["gRPC", createClient(ConcertService, createGrpcTransport({ baseUrl }))],
  ];
  // knex prints pool trouble with console.log unless told otherwise: anything here went around the JSON log.
  restoreConsole = consoleMethods.map((m) => {
    const spy = jest.spyOn(console, m).mockImplementation((...args: unknown[]) => void consoleCalls.push([m, ...args]));
    return () => spy.mockRestore();
  });
});
afterAll(async () => {
  for (const restore of restoreConsole) restore();
  await server?.close(500);
  await deps?.close();
  pg?.stop();
});

type Answer = { ok: true } | { ok: false; code: Code; reason?: string };

async function listConcerts(client: Client<typeof ConcertService>): Promise<Answer> {
  try {
    await client.listConcerts({}, { timeoutMs: 5000 });
    return { ok: true };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { ok: false, code: ce.code, reason: errorReason(ce) };
  }
}

/** Calls both ways, a few at a time, until `done()`; returns every answer. */
async function callWhile(done: () => boolean): Promise<Answer[]> {
  const answers: Answer[] = [];
  while (!done()) {
    answers.push(...(await Promise.all(clients.flatMap(([, c]) => [listConcerts(c), listConcerts(c)]))));
    await new Promise((r) => setTimeout(r, 20));
  }
  return answers;
}

/** Calls until one succeeds; returns the answers before it. */
async function callUntilServed(timeoutMs = 30_000): Promise<Answer[]> {
  const deadline = Date.now() + timeoutMs;
  const answers: Answer[] = [];
  for (;;) {
    const a = await listConcerts(clients[0][1]);
    if (a.ok) return answers;
    answers.push(a);
    if (Date.now() > deadline) throw new Error(`not served again within ${timeoutMs} ms: ${JSON.stringify(answers.slice(-3))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const failures = (answers: Answer[]) => answers.filter((a): a is Extract<Answer, { ok: false }> => !a.ok);
const lines = (msg: string) => captured.lines.filter((l) => l.msg === msg);

test("served before the restart, both ways", async () => {
  for (const [, c] of clients) expect(await listConcerts(c)).toEqual({ ok: true });
});

test("a fast shutdown and the time the server is away: every call UNAVAILABLE DATABASE_UNAVAILABLE, one warn line; then served again, said once", async () => {
  let stopped = false;
  const stopping = new Promise((r) => setTimeout(r, 100)).then(() => pg.stopFast()).then(() => (stopped = true));
  // Calls while the server shuts down, then for a while with nothing listening.
  const during = await callWhile(() => stopped);
  const away = await callWhile(
    (() => {
      const until = Date.now() + 1500;
      return () => Date.now() > until;
    })(),
  );
  await stopping;
  const failed = failures([...during, ...away]);
  expect(failed.length).toBeGreaterThan(10);
  expect(failed.map((a) => [a.code, a.reason])).toEqual(failed.map(() => [Code.Unavailable, "DATABASE_UNAVAILABLE"]));

  await pg.start();
  expect(failures(await callUntilServed()).every((a) => a.code === Code.Unavailable && a.reason === "DATABASE_UNAVAILABLE")).toBe(true);
  for (const [, c] of clients) expect(await listConcerts(c)).toEqual({ ok: true });

  // One outage, said once; or, when a call slipped through while the server
  // shut down (a flap, then the outage), said once more: never once per call.
  const down = lines("database unavailable");
  const back = lines("database available again");
  expect(down.length).toBeGreaterThanOrEqual(1);
  expect(down.length).toBeLessThanOrEqual(2);
  for (const l of down)
    expect(l).toEqual(
      expect.objectContaining({
        level: 40,
        dependency: "database",
        reason: "DATABASE_UNAVAILABLE",
        kind: expect.any(String),
        procedure: "/boxoffice.concert.v1.ConcertService/ListConcerts",
      }),
    );
  expect(back).toHaveLength(down.length);
  for (const l of back) expect(l).toEqual(expect.objectContaining({ level: 30, failures: expect.any(Number) }));
  expect(back.reduce((n, l) => n + Number(l.failures), 0)).toBeGreaterThanOrEqual(failed.length);
  // The pool's own news of the shutdown: once, in the JSON log, not printed by knex.
  expect(lines("database connection lost").length).toBeLessThanOrEqual(1);
  expect(lines("unexpected failure")).toEqual([]);
  expect(consoleCalls).toEqual([]);
});

test("a crash and the recovery after it: every call UNAVAILABLE, then served again", async () => {
  await pg.crash();
  const away = await callWhile(
    (() => {
      const until = Date.now() + 500;
      return () => Date.now() > until;
    })(),
  );
  await pg.start(false);
  const recovering = await callUntilServed();
  const failed = failures([...away, ...recovering]);
  expect(failed.length).toBeGreaterThan(0);
  expect(failed.map((a) => [a.code, a.reason])).toEqual(failed.map(() => [Code.Unavailable, "DATABASE_UNAVAILABLE"]));
  for (const [, c] of clients) expect(await listConcerts(c)).toEqual({ ok: true });

  // Within one window of the first outage: counted, not logged again.
  expect(lines("database unavailable").length).toBeLessThanOrEqual(2);
  expect(lines("unexpected failure")).toEqual([]);
  expect(consoleCalls).toEqual([]);
});

test("pg_terminate_backend of every session of the server: the pool replaces them, callers see at most UNAVAILABLE", async () => {
  const admin = new PgClient({ connectionString: pg.adminUrl });
  await admin.connect();
  try {
    const calls = callWhile(
      (() => {
        const until = Date.now() + 1000;
        return () => Date.now() > until;
      })(),
    );
    await new Promise((r) => setTimeout(r, 200));
    await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'boxoffice' and pid <> pg_backend_pid()");
    const failed = failures(await calls);
    expect(failed.map((a) => [a.code, a.reason])).toEqual(failed.map(() => [Code.Unavailable, "DATABASE_UNAVAILABLE"]));
  } finally {
    await admin.end();
  }
  expect(await callUntilServed(5000)).toEqual([]);
  expect(lines("unexpected failure")).toEqual([]);
  expect(consoleCalls).toEqual([]);
});
