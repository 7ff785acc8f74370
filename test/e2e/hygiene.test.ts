/**
 * Connection hygiene on the public port: a connection that does not send a
 * request head in time, an idle keep-alive socket, an idle HTTP/2 session and
 * an HTTP/2 connection opening streams without end all give their resources
 * back, while honest callers keep being served. Raw node:net and node:http2
 * clients, short timeouts.
 */
import { connect as http2Connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { type grpc, grpcJsClient, unary } from "./grpc-js";

const HEADERS_TIMEOUT = 300;
const KEEPALIVE_TIMEOUT = 300;
const HTTP2_IDLE_TIMEOUT = 500;
const MAX_STREAMS = 4;
/** Timers, the HTTP/1.1 checking interval and a loaded machine: what "on time" may add. */
const SLACK = 700;

let db: TestDatabase;
let s: TestServer;
let honest: grpc.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({
    DATABASE_URL: db.url,
    SEED_DEMO_CATALOG: "true",
    HEADERS_TIMEOUT: `${HEADERS_TIMEOUT}ms`,
    KEEPALIVE_TIMEOUT: `${KEEPALIVE_TIMEOUT}ms`,
    HTTP2_IDLE_TIMEOUT: `${HTTP2_IDLE_TIMEOUT}ms`,
    HTTP2_MAX_CONCURRENT_STREAMS: String(MAX_STREAMS),
  });
  honest = grpcJsClient(s.port);
});

afterAll(async () => {
  honest?.close();
  await s?.stop();
  await db?.drop();
});

/** Opens a socket and writes `bytes` once connected. */
function rawSocket(bytes: string | Buffer = ""): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(s.port, "127.0.0.1", () => {
      if (bytes.length) socket.write(bytes);
      resolve(socket);
    });
    socket.on("error", reject);
  });
}

interface Closed {
  /** Milliseconds from `since` until the socket closed; Infinity if still open after `limitMs`. */
  afterMs: number;
  received: string;
}

/** Waits for the server to close the socket (or `limitMs` to pass: then destroys it). */
function untilClosed(socket: Socket, since: number, limitMs = 10_000): Promise<Closed> {
  let received = "";
  socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
  return new Promise((resolve) => {
    const give_up = setTimeout(() => {
      socket.destroy();
      resolve({ afterMs: Infinity, received });
    }, limitMs);
    socket.once("close", () => {
      clearTimeout(give_up);
      resolve({ afterMs: Date.now() - since, received });
    });
  });
}

/** Honest calls of every kind: gRPC over HTTP/2 and Connect JSON over HTTP/1.1. */
async function honestCallsWork(): Promise<void> {
  const check = await unary(honest, Health.method.check, { service: "" });
  expect(check.message.status).toBe(Status.SERVING);
  const list = await unary(honest, ConcertService.method.listConcerts, {});
  expect(list.message.concerts.length).toBeGreaterThan(0);
  const res = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
}

// --- A minimal HTTP/2 client that writes frames itself, so it can break the rules a library would keep. ---

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const FRAME = { data: 0, headers: 1, rstStream: 3, settings: 4, goaway: 7 } as const;
const FLAG = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman: every length here is < 127. */
function headerBlock(headers: Record<string, string>): Buffer {
  return Buffer.concat(
    Object.entries(headers).map(([name, value]) =>
      Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]),
    ),
  );
}

/** One Health/Watch call: HEADERS, then an empty request message that ends the client's side. The server keeps the stream open. */
function watchFrames(streamId: number): Buffer {
  const headers = headerBlock({
    ":method": "POST",
    ":scheme": "http",
    ":path": "/grpc.health.v1.Health/Watch",
    ":authority": "127.0.0.1",
    "content-type": "application/grpc",
    te: "trailers",
  });
  return Buffer.concat([frame(FRAME.headers, FLAG.endHeaders, streamId, headers), frame(FRAME.data, FLAG.endStream, streamId, Buffer.alloc(5))]);
}

interface RawH2 {
  socket: Socket;
  /** The server's SETTINGS, by identifier. */
  settings: Promise<Map<number, number>>;
  /** Streams the server answered with HEADERS. */
  answered: Set<number>;
  /** Streams the server reset, with the error code. */
  reset: Map<number, number>;
  goaway?: { lastStreamId: number; code: number };
}

async function rawH2(opts: { ackSettings: boolean }): Promise<RawH2> {
  const socket = await rawSocket(Buffer.concat([PREFACE, frame(FRAME.settings, 0, 0)]));
  let gotSettings!: (s: Map<number, number>) => void;
  const conn: RawH2 = { socket, settings: new Promise((r) => (gotSettings = r)), answered: new Set(), reset: new Map() };
  let buf = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const [type, flags, id, payload] = [buf[3], buf[4], buf.readUInt32BE(5) & 0x7fffffff, buf.subarray(9, 9 + len)];
      buf = buf.subarray(9 + len);
      if (type === FRAME.settings && !(flags & FLAG.ack)) {
        const settings = new Map<number, number>();
        for (let i = 0; i + 6 <= payload.length; i += 6) settings.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
        if (opts.ackSettings) socket.write(frame(FRAME.settings, FLAG.ack, 0));
        gotSettings(settings);
      } else if (type === FRAME.headers) conn.answered.add(id);
      else if (type === FRAME.rstStream) conn.reset.set(id, payload.readUInt32BE(0));
      else if (type === FRAME.goaway) conn.goaway = { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
    }
  });
  socket.on("error", () => undefined);
  return conn;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("HEADERS_TIMEOUT: a connection must send a request head in time", () => {
  test("silent sockets, one byte, part of the HTTP/2 preface, half an HTTP/1.1 head, an HTTP/2 preface without a request: all closed on time; honest calls work meanwhile", async () => {
    const opened = Date.now();
    const kinds = {
      silent: "",
      oneByte: "G",
      partialPreface: "PR",
      halfHead: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
      h2NoRequest: Buffer.concat([PREFACE, frame(FRAME.settings, 0, 0)]),
    };
    const attackers = await Promise.all(
      Object.entries(kinds).flatMap(([kind, bytes]) => Array.from({ length: 20 }, async () => ({ kind, socket: await rawSocket(bytes) }))),
    );
    const closed = attackers.map(({ kind, socket }) => untilClosed(socket, opened).then((c) => ({ kind, ...c })));

    await honestCallsWork(); // while 100 stalled sockets are open

    const results = await Promise.all(closed);
    for (const r of results) {
      expect({ kind: r.kind, late: r.afterMs > HEADERS_TIMEOUT + SLACK }).toEqual({ kind: r.kind, late: false });
      expect(r.afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50); // the timeout, not something sooner
    }
    // HTTP/1.1 tells the client why before it closes.
    for (const r of results.filter((x) => x.kind === "halfHead")) expect(r.received).toMatch(/^HTTP\/1\.1 408 /);

    await honestCallsWork();
  });

  test("an HTTP/1.1 head dribbled a header every 100 ms is cut at HEADERS_TIMEOUT, though the socket is never idle", async () => {
    const socket = await rawSocket("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const opened = Date.now();
    const closed = untilClosed(socket, opened);
    const drip = setInterval(() => socket.writable && socket.write("X-Slow: 1\r\n"), 100);
    try {
      const { afterMs, received } = await closed;
      expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + SLACK);
      expect(received).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(drip);
    }
  });

  test("a keep-alive socket that starts its second request head but never finishes it is cut too", async () => {
    const socket = await rawSocket("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    for (let i = 0; i < 100 && !received.includes("ok\n"); i++) await sleep(10);
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    socket.write("GET /healthz HTTP/1.1\r\nHo");
    const started = Date.now();
    const { afterMs } = await untilClosed(socket, started);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + SLACK);
  });
});

describe("KEEPALIVE_TIMEOUT and HTTP2_IDLE_TIMEOUT: idle connections are given back", () => {
  test("an idle HTTP/1.1 keep-alive socket is closed after KEEPALIVE_TIMEOUT (node adds one second to what it advertises)", async () => {
    const socket = await rawSocket("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
    let answeredAt = 0;
    socket.on("data", (d: Buffer) => {
      if (!answeredAt && d.toString("latin1").includes("ok\n")) answeredAt = Date.now();
    });
    const { afterMs, received } = await untilClosed(socket, Date.now());
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).toMatch(/keep-alive/i);
    const idleMs = Date.now() - answeredAt;
    expect(afterMs).toBeLessThan(Infinity);
    expect(idleMs).toBeGreaterThanOrEqual(KEEPALIVE_TIMEOUT - 50);
    expect(idleMs).toBeLessThan(KEEPALIVE_TIMEOUT + 1000 + SLACK);
  });

  test("an HTTP/2 session with no open stream gets a GOAWAY after HTTP2_IDLE_TIMEOUT", async () => {
    const session = http2Connect(s.baseUrl);
    const goaway = new Promise<{ code: number; at: number }>((resolve) => session.once("goaway", (code) => resolve({ code, at: Date.now() })));
    const closed = new Promise<number>((resolve) => session.once("close", () => resolve(Date.now())));
    // Plaintext HTTP/2 is gRPC on this port: one Health/Check, then nothing.
    expect(await grpcCheck(session)).toEqual({ status: 200, grpcStatus: "0" });
    const idleSince = Date.now();
    const { code, at } = await goaway;
    expect(code).toBe(h2.NGHTTP2_NO_ERROR);
    expect(at - idleSince).toBeGreaterThanOrEqual(HTTP2_IDLE_TIMEOUT - 50);
    expect(at - idleSince).toBeLessThan(HTTP2_IDLE_TIMEOUT + SLACK);
    expect((await closed) - idleSince).toBeLessThan(HTTP2_IDLE_TIMEOUT + SLACK);
  });

  test("an HTTP/2 session with an open Watch stream is never cut for idleness; once the stream ends, it gets its GOAWAY", async () => {
    const session = http2Connect(s.baseUrl);
    session.on("error", () => undefined);
    let goawayAt = 0;
    session.once("goaway", () => (goawayAt = Date.now()));
    const watch = grpcWatch(session);
    const messages: Buffer[] = [];
    watch.on("data", (d: Buffer) => messages.push(d));
    await new Promise((r) => watch.once("response", r));
    await sleep(HTTP2_IDLE_TIMEOUT * 4); // four idle periods with nothing but the open stream
    expect(goawayAt).toBe(0);
    expect(session.closed || session.destroyed).toBe(false);
    expect(watch.closed).toBe(false);
    expect(messages.length).toBeGreaterThan(0);

    const streamEnded = Date.now();
    watch.close(h2.NGHTTP2_CANCEL);
    await new Promise((r) => session.once("close", r));
    expect(goawayAt).toBeGreaterThan(0);
    expect(goawayAt - streamEnded).toBeLessThan(HTTP2_IDLE_TIMEOUT + SLACK);
  });
});

describe("HTTP2_MAX_CONCURRENT_STREAMS: one connection holds a bounded number of streams", () => {
  test("the server advertises the limit, and streams past it are refused (REFUSED_STREAM) while the first ones are served", async () => {
    const conn = await rawH2({ ackSettings: false });
    // Everything at once, before the server's SETTINGS could even be read.
    conn.socket.write(Buffer.concat(Array.from({ length: 3 * MAX_STREAMS }, (_, i) => watchFrames(1 + 2 * i))));
    expect((await conn.settings).get(h2.NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)).toBe(MAX_STREAMS);
    for (let i = 0; i < 100 && conn.answered.size + conn.reset.size < 3 * MAX_STREAMS; i++) await sleep(20);
    expect(conn.answered.size).toBe(MAX_STREAMS);
    expect([...conn.reset.values()]).toEqual(Array(2 * MAX_STREAMS).fill(h2.NGHTTP2_REFUSED_STREAM));
    conn.socket.destroy();
    await honestCallsWork();
  });

  test("a client that acknowledged the limit and still exceeds it loses the connection; the server keeps serving", async () => {
    const conn = await rawH2({ ackSettings: true });
    await conn.settings;
    const closed = untilClosed(conn.socket, Date.now());
    conn.socket.write(Buffer.concat(Array.from({ length: 3 * MAX_STREAMS }, (_, i) => watchFrames(1 + 2 * i))));
    const { afterMs } = await closed;
    expect(afterMs).toBeLessThan(SLACK);
    expect(conn.goaway).toBeDefined(); // nghttp2's connection error: not NO_ERROR, never a graceful goodbye
    expect(conn.goaway?.code).not.toBe(h2.NGHTTP2_NO_ERROR);
    expect(conn.answered.size).toBeLessThanOrEqual(MAX_STREAMS);
    await honestCallsWork();
  });

  test("an honest HTTP/2 client asking for more streams has the extra ones wait for a free slot", async () => {
    const session = http2Connect(s.baseUrl);
    session.on("error", () => undefined);
    try {
      await new Promise((r) => session.once("remoteSettings", r));
      const watches = Array.from({ length: MAX_STREAMS + 2 }, () => grpcWatch(session));
      const responded = watches.map((w) => new Promise<void>((r) => w.once("response", () => r())));
      let answered = 0;
      for (const p of responded) p.then(() => answered++);
      await Promise.all(responded.slice(0, MAX_STREAMS));
      await sleep(200);
      expect(answered).toBe(MAX_STREAMS);
      watches[0].close(h2.NGHTTP2_CANCEL);
      watches[1].close(h2.NGHTTP2_CANCEL);
      await Promise.all(responded);
      expect(answered).toBe(MAX_STREAMS + 2);
      for (const w of watches) w.close(h2.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
  });
});

/** A Health/Check over a raw HTTP/2 session: its HTTP status and grpc-status. */
function grpcCheck(session: ClientHttp2Session): Promise<{ status: number; grpcStatus: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    let status = 0;
    let grpcStatus: string | undefined;
    req.on("response", (h) => {
      status = Number(h[":status"]);
      grpcStatus ??= h["grpc-status"] as string | undefined;
    });
    req.on("trailers", (t) => (grpcStatus = t["grpc-status"] as string | undefined));
    req.on("data", () => undefined);
    req.on("end", () => resolve({ status, grpcStatus }));
    req.on("error", reject);
    req.end(Buffer.alloc(5)); // one empty HealthCheckRequest
  });
}

/** A Health/Watch server stream: stays open until the client closes it. */
function grpcWatch(session: ClientHttp2Session): ClientHttp2Stream {
  const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => undefined);
  stream.end(Buffer.alloc(5)); // one empty HealthCheckRequest
  return stream;
}
