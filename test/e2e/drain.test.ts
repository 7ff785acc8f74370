/**
 * What real clients see while the server drains: grpc-js, and connect-node's
 * gRPC, gRPC-Web and Connect transports over HTTP/2 (Connect also over
 * HTTP/1.1). Every call either completes OK or fails UNAVAILABLE, never
 * INTERNAL, ABORTED or CANCELLED, and the calls that fail are the ones the
 * server never ran, or was still running when the grace period ended.
 */
import { fork } from "node:child_process";
import { connect as http2Connect, constants as h2, type ClientHttp2Session } from "node:http2";
import { join } from "node:path";
import { Client } from "pg";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import type { Command, Outcome, Reply, Request } from "./drain-callers";
import { collect, grpc, grpcJsClient, serverStream, unary } from "./grpc-js";

let db: TestDatabase;
let s: TestServer;
let blocker: Client;

beforeEach(async () => {
  db = await createTestDatabase();
  // Enough connections for every blocked call to hold one while it waits for the lock.
  // No catalog cache: every ListConcerts must reach the table the test locks.
  s = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true", DB_POOL_MAX: "60", CATALOG_CACHE_TTL: "0" });
  blocker = new Client({ connectionString: db.url });
  await blocker.connect();
});

afterEach(async () => {
  await blocker.end().catch(() => undefined);
  await s.server.close(0); // a no-op where the test closed it already
  await s.deps.close().catch(() => undefined);
  await db.drop();
});

/** Every read of the catalog waits until the returned function commits (a real lock, no test double). */
async function blockCatalog(): Promise<() => Promise<void>> {
  await blocker.query("begin");
  await blocker.query("lock table concert in access exclusive mode");
  return async () => {
    await blocker.query("commit");
  };
}

/** Resolves once `calls` backends wait for a lock: those calls are running in the server. */
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

/** The clients, in a process of their own (see drain-callers.ts), connected to `port`. */
function startCallers(baseUrl: string, port: number) {
  const child = fork(join(__dirname, "drain-callers.ts"), [baseUrl, String(port)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let next = 0;
  const pending = new Map<number, { resolve: (outcomes: Outcome[]) => void; reject: (err: Error) => void }>();
  child.on("message", (reply: Reply) => pending.get(reply.id)?.resolve(reply.outcomes));
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      for (const p of pending.values()) p.reject(new Error(`the callers' process exited (${code})`));
      resolve();
    }),
  );
  const send = (request: Request) =>
    new Promise<Outcome[]>((resolve, reject) => {
      const id = next++;
      pending.set(id, {
        resolve: (outcomes) => {
          pending.delete(id);
          resolve(outcomes);
        },
        reject,
      });
      child.send({ ...request, id } satisfies Command);
    });
  return {
    /** `n` concurrent calls from every client; `http1: false` leaves out Connect over HTTP/1.1. */
    wave: (n: number, { http1 = true } = {}) => send({ cmd: "wave", n, http1 }),
    refusedStream: () => send({ cmd: "refused-stream" }),
    async exit() {
      if (child.connected) child.send({ id: next++, cmd: "exit" } satisfies Command);
      await exited;
    },
  };
}

const codes = (outcomes: Outcome[]) => [...new Set(outcomes.map((o) => o.code))].sort();
const report = (outcomes: Outcome[]) => outcomes.map((o) => `${o.caller}: ${o.code} ${o.message}`).join("\n");
/** All `outcomes` are `code`; on failure, says who got what. */
const expectAll = (outcomes: Outcome[], code: string) =>
  expect({ codes: codes(outcomes), report: report(outcomes) }).toEqual({ codes: [code], report: report(outcomes) });

jest.setTimeout(60_000);

/** Clients in drain-callers.ts: grpc-js, connect-node gRPC, gRPC-Web and Connect over HTTP/1.1. */
const CALLERS = 4;

test("a burst during the drain: calls already running complete OK; calls that arrive on open connections, or after the port closed, fail UNAVAILABLE; nothing else", async () => {
  const callers = startCallers(s.baseUrl, s.port);
  const watchClient = grpcJsClient(s.port);
  const healthClient = grpcJsClient(s.port);
  try {
    // Every client has its connection before anything blocks.
    expectAll(await callers.wave(1), "OK");

    const release = await blockCatalog();
    const running = callers.wave(3);
    // Keeps the health client's connection open through the drain.
    const healthClientCall = unary(healthClient, ConcertService.method.listConcerts, {});
    await untilWaiting(CALLERS * 3 + 1);

    const watch = serverStream(watchClient, Health.method.watch, { service: "" });
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => (first = r));
    const watched = collect(watch, () => first());
    await gotFirst;

    let closed = false;
    const closing = s.server.close(10_000).then(() => (closed = true));
    // Sent after the drain began, on HTTP/2 connections that are still open
    // (each has calls running): the server answers them without running them.
    // (Connect over HTTP/1.1 opens a socket per concurrent call: it meets the closed port below.)
    const arrivedDuringDrain = callers.wave(5, { http1: false });
    await new Promise((r) => setTimeout(r, 100));
    const arrivedLater = callers.wave(5, { http1: false });

    // A health check on a connection still open answers: NOT_SERVING.
    const check = await unary(healthClient, Health.method.check, { service: "" });
    expect(check.message.status).toBe(Status.NOT_SERVING);
    expect((await watched).status.code).toBe(grpc.status.UNAVAILABLE);

    expectAll([...(await arrivedDuringDrain), ...(await arrivedLater)], "UNAVAILABLE");
    expect(closed).toBe(false);
    await release();
    expectAll(await running, "OK");
    expect((await healthClientCall).message.concerts).toHaveLength(4);
    await closing;
    // After the drain: no connection to be had.
    expectAll(await callers.wave(3), "UNAVAILABLE");
  } finally {
    watchClient.close();
    healthClient.close();
    await callers.exit();
  }
});

/** A unary gRPC call with an empty request, spoken by hand: the status from the trailers (or trailers-only headers) and the RST code. */
function rawGrpcCall(session: ClientHttp2Session, path: string): Promise<{ status: string | undefined; rstCode: number }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    stream.on("response", (headers) => (status = (headers["grpc-status"] as string | undefined) ?? status));
    stream.on("trailers", (trailers) => (status = trailers["grpc-status"] as string));
    stream.on("error", () => undefined); // the close below carries the code
    stream.on("close", () => resolve({ status, rstCode: stream.rstCode ?? -1 }));
    stream.resume();
    stream.end(Buffer.alloc(5)); // one empty message: flag 0, length 0
    session.once("error", reject);
  });
}

test("HTTP/2, frame by frame: an idle connection gets its GOAWAY at once; a busy one gets none while its call runs, answers a new stream UNAVAILABLE rather than refusing it, and gets its GOAWAY once the call is done", async () => {
  const listConcerts = "/boxoffice.concert.v1.ConcertService/ListConcerts";
  const idle = http2Connect(s.baseUrl);
  const busy = http2Connect(s.baseUrl);
  const goaways = new Map<ClientHttp2Session, { code: number; lastStreamId: number; at: number }>();
  for (const session of [idle, busy]) session.on("goaway", (code, lastStreamId) => goaways.set(session, { code, lastStreamId, at: Date.now() }));
  try {
    expect((await rawGrpcCall(idle, listConcerts)).status).toBe("0");
    expect((await rawGrpcCall(busy, listConcerts)).status).toBe("0");
    const release = await blockCatalog();
    const runningCall = rawGrpcCall(busy, listConcerts);
    await untilWaiting(1);

    const closing = s.server.close(10_000);
    for (let i = 0; i < 100 && !goaways.has(idle); i++) await new Promise((r) => setTimeout(r, 10));
    expect(goaways.get(idle)).toMatchObject({ code: h2.NGHTTP2_NO_ERROR });

    const lateCall = await rawGrpcCall(busy, listConcerts);
    expect(lateCall).toEqual({ status: String(grpc.status.UNAVAILABLE), rstCode: h2.NGHTTP2_NO_ERROR });
    expect(goaways.has(busy)).toBe(false);

    const released = Date.now();
    await release();
    expect(await runningCall).toEqual({ status: "0", rstCode: h2.NGHTTP2_NO_ERROR });
    await closing;
    // Every stream the client opened was answered: the last stream id is the late call's (stream 5).
    expect(goaways.get(busy)).toMatchObject({ code: h2.NGHTTP2_NO_ERROR, lastStreamId: 5 });
    expect(goaways.get(busy)!.at).toBeGreaterThanOrEqual(released);
  } finally {
    idle.destroy();
    busy.destroy();
  }
});

test("calls still running when the grace period ends fail UNAVAILABLE for every client, and close() returns soon after", async () => {
  // connect-node reports on stderr a handler whose client is gone by the time it answers.
  const stderr = jest.spyOn(console, "error").mockImplementation(() => undefined);
  const callers = startCallers(s.baseUrl, s.port);
  try {
    expectAll(await callers.wave(1), "OK");
    const release = await blockCatalog();
    const running = callers.wave(2);
    await untilWaiting(CALLERS * 2);
    const started = Date.now();
    await s.server.close(300);
    expect(Date.now() - started).toBeLessThan(3_000);
    expectAll(await running, "UNAVAILABLE");
    await release();
    for (let i = 0; i < 50 && stderr.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await callers.exit();
    stderr.mockRestore();
  }
});

test("why the drain never refuses a stream: connect-node reports REFUSED_STREAM as INTERNAL (grpc-js: UNAVAILABLE)", async () => {
  // Pins the client behaviour the drain works around (connect-node 2.1): node
  // emits the stream's "error" before its "close", and connect-node maps that
  // error (ERR_HTTP2_STREAM_ERROR) to INTERNAL before it looks at the
  // RST_STREAM code. grpc-js reads the code: UNAVAILABLE (after one transparent retry).
  const callers = startCallers(s.baseUrl, s.port);
  try {
    const [grpcJs, connectNode] = await callers.refusedStream();
    expect(grpcJs).toMatchObject({ code: "UNAVAILABLE", message: "Stream refused by server" });
    expect(connectNode).toMatchObject({ code: "INTERNAL", message: expect.stringContaining("REFUSED_STREAM") });
  } finally {
    await callers.exit();
  }
});
