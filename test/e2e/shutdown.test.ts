/**
 * Graceful shutdown of the in-process server: calls already running finish,
 * streams end with UNAVAILABLE, the port stops accepting at once.
 */
import { connect as netConnect } from "node:net";
import { Client } from "pg";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { collect, grpc, grpcJsClient, serverStream, unary } from "./grpc-js";

let db: TestDatabase;
let s: TestServer | undefined;
let blocker: Client;

beforeEach(async () => {
  db = await createTestDatabase();
  // No catalog cache: every ListConcerts must reach the table the test locks.
  s = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true", CATALOG_CACHE_TTL: "0" });
  blocker = new Client({ connectionString: db.url });
  await blocker.connect();
});

afterEach(async () => {
  await blocker.end().catch(() => undefined);
  await s?.deps.close().catch(() => undefined);
  await db.drop();
});

/**
 * Makes every read of the catalog wait: a transaction holding an exclusive lock
 * on the concert table. Real database behaviour, no test double in the server.
 */
async function blockCatalog(): Promise<() => Promise<void>> {
  await blocker.query("begin");
  await blocker.query("lock table concert in access exclusive mode");
  return async () => {
    await blocker.query("commit");
  };
}

/** Resolves once `calls` backends of this database wait for a lock: those calls are in flight. */
async function untilWaiting(calls: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { rows } = await blocker.query(
      "select count(*)::int as n from pg_locks l join pg_database d on d.oid = l.database where not l.granted and d.datname = current_database()",
    );
    if (rows[0].n >= calls) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`fewer than ${calls} calls ever waited for the lock`);
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

test("close(): in-flight gRPC and HTTP/1.1 calls finish, Watch streams end UNAVAILABLE, the port refuses new connections", async () => {
  const server = s!;
  const client = grpcJsClient(server.port);
  try {
    const watch = serverStream(client, Health.method.watch, { service: "" });
    let firstStatus!: () => void;
    const gotFirst = new Promise<void>((r) => (firstStatus = r));
    const watched = collect(watch, () => firstStatus());
    await gotFirst;

    const release = await blockCatalog();
    const grpcCall = unary(client, ConcertService.method.listConcerts, {});
    const browserCall = fetch(`${server.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    await untilWaiting(2); // both calls are inside the server before it starts closing

    const started = Date.now();
    let closed = false;
    const closing = server.server.close(10_000).then(() => (closed = true));

    const { messages, status } = await watched;
    expect(messages.map((m) => m.status)).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(await refusesConnections(server.port)).toBe(true);
    expect(closed).toBe(false);

    await release();
    const viaGrpc = await grpcCall;
    expect(viaGrpc.message.concerts).toHaveLength(4);
    const viaHttp1 = await browserCall;
    expect(viaHttp1.status).toBe(200);
    expect(((await viaHttp1.json()) as { concerts: unknown[] }).concerts).toHaveLength(4);

    const callsDone = Date.now();
    await closing;
    // Drained as soon as the calls finished: neither the grace period nor the
    // client's keep-alive timeout decides when close() returns.
    expect(Date.now() - callsDone).toBeLessThan(1_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    client.close();
  }
});

test("close(): calls still running when the grace period ends are cut off", async () => {
  const server = s!;
  // connect-node reports on stderr a handler whose client is gone by the time it answers.
  const stderr = jest.spyOn(console, "error").mockImplementation(() => undefined);
  const client = grpcJsClient(server.port);
  try {
    const release = await blockCatalog();
    const call = unary(client, ConcertService.method.listConcerts, {}).then(
      () => "completed",
      (err: grpc.ServiceError) => err.code,
    );
    await untilWaiting(1);
    const started = Date.now();
    await server.server.close(300);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await call).toBe(grpc.status.UNAVAILABLE);
    await release();
    // Let the released handler find its stream gone while stderr is still muted.
    for (let i = 0; i < 100 && stderr.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    client.close();
    stderr.mockRestore();
  }
});
