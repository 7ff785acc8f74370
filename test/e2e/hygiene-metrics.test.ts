/**
 * Operations hygiene: Prometheus metrics live on their own loopback listener,
 * not on the public port; and requests the Connect runtime refuses before the
 * call pipeline (bytes that are not the request message, broken framing) are
 * logged and counted like every other call.
 */
import { connect as http2Connect, constants as h2 } from "node:http2";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { grpcJsClient, unary } from "./grpc-js";

const ISSUE_TOKEN = "/boxoffice.queue.v1.QueueService/IssueToken";
const LIST_CONCERTS = "/boxoffice.concert.v1.ConcertService/ListConcerts";
/** An IssueTokenRequest whose user_id promises a length in a varint that never ends. */
const GARBAGE = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

let db: TestDatabase;
let s: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true", METRICS_PORT: "0" });
});

afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

afterEach(() => jest.restoreAllMocks());

const metricsUrl = (path = "/metrics") => `http://127.0.0.1:${s.server.metricsPort}${path}`;

/** rpc_calls_total for one procedure and code, read from the metrics port. */
async function calls(procedure: string, code: string): Promise<number> {
  const text = await (await fetch(metricsUrl())).text();
  const line = text.split("\n").find((l) => l.startsWith(`rpc_calls_total{procedure="${procedure}",code="${code}"}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

/** gRPC length-prefixed message framing. */
const envelope = (payload: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);

/** One HTTP/2 gRPC request with a hand-made body. */
function rawGrpc(path: string, body: Buffer, requestId: string) {
  return new Promise<{ status?: string; message?: string; requestId?: string }>((resolve, reject) => {
    const session = http2Connect(s.baseUrl);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", "x-request-id": requestId });
    const out: { status?: string; message?: string; requestId?: string } = {};
    const read = (h: Record<string, string | string[] | undefined>) => {
      out.status = (h["grpc-status"] as string | undefined) ?? out.status;
      out.message = (h["grpc-message"] as string | undefined) ?? out.message;
      out.requestId = (h["x-request-id"] as string | undefined) ?? out.requestId;
    };
    req.on("response", read);
    req.on("trailers", read);
    req.on("data", () => undefined);
    req.on("end", () => {
      session.close();
      resolve(out);
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("metrics port", () => {
  test("metrics are served on the loopback metrics port; the public port answers /metrics with 404 and keeps /healthz", async () => {
    const scraped = await fetch(metricsUrl());
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await scraped.text()).toMatch(/^# HELP rpc_calls_total /m);
    expect((await fetch(metricsUrl("/other"))).status).toBe(404);

    const viaHttp1 = await fetch(`${s.baseUrl}/metrics`);
    expect(viaHttp1.status).toBe(404);
    expect(await viaHttp1.text()).not.toMatch(/rpc_calls_total|process_cpu/);
    const session = http2Connect(s.baseUrl);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ":path": "/metrics" });
        req.on("response", (h) => resolve(Number(h[h2.HTTP2_HEADER_STATUS])));
        req.on("error", reject);
        req.resume();
        req.end();
      });
      // Plaintext HTTP/2 is gRPC (grpc-js): anything else is 415, and never the metrics.
      expect(status).toBe(415);
    } finally {
      session.close();
    }
    expect((await fetch(`${s.baseUrl}/healthz`)).status).toBe(200);
  });

  test("METRICS_PORT=off: no metrics listener at all", async () => {
    const quiet = await startTestServer({ DATABASE_URL: db.url });
    try {
      expect(quiet.server.metricsPort).toBeUndefined();
      expect((await fetch(`${quiet.baseUrl}/metrics`)).status).toBe(404);
    } finally {
      await quiet.stop();
    }
  });
});

describe("requests the runtime refuses before the pipeline", () => {
  test("garbage protobuf over gRPC (HTTP/2): INVALID_ARGUMENT naming the message, logged by the pipeline with its request id, counted once", async () => {
    const info = jest.spyOn(s.deps.log, "info");
    const before = await calls(ISSUE_TOKEN, "INVALID_ARGUMENT");
    const res = await rawGrpc(ISSUE_TOKEN, envelope(GARBAGE), "garbage-grpc-1");
    expect(res.status).toBe("3");
    expect(decodeURIComponent(res.message ?? "")).toMatch(/^cannot decode boxoffice\.queue\.v1\.IssueTokenRequest: /);
    expect(res.requestId).toBe("garbage-grpc-1");
    expect(await calls(ISSUE_TOKEN, "INVALID_ARGUMENT")).toBe(before + 1);
    const lines = info.mock.calls.map((c) => c[0] as unknown as Record<string, unknown>).filter((l) => l.procedure === ISSUE_TOKEN);
    expect(lines).toEqual([expect.objectContaining({ code: "INVALID_ARGUMENT", requestId: "garbage-grpc-1" })]);
  });

  test("garbage protobuf over Connect (HTTP/1.1, application/proto): HTTP 500 internal, logged and counted", async () => {
    const warn = jest.spyOn(s.deps.log, "warn");
    const before = await calls(ISSUE_TOKEN, "INTERNAL");
    const res = await fetch(`${s.baseUrl}${ISSUE_TOKEN}`, { method: "POST", headers: { "content-type": "application/proto" }, body: GARBAGE });
    expect(res.status).toBe(500);
    const requestId = res.headers.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("internal");
    expect(body.message).toMatch(/^parse binary: /);
    expect(await calls(ISSUE_TOKEN, "INTERNAL")).toBe(before + 1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatchObject({ procedure: ISSUE_TOKEN, code: "INTERNAL", requestId });
  });

  test("garbage protobuf over gRPC-Web (HTTP/1.1): the status in the trailer frame is the one counted", async () => {
    const before = await calls(ISSUE_TOKEN, "INTERNAL");
    const res = await fetch(`${s.baseUrl}${ISSUE_TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: envelope(GARBAGE),
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).toString("latin1")).toMatch(/grpc-status: ?13/);
    expect(await calls(ISSUE_TOKEN, "INTERNAL")).toBe(before + 1);
  });

  test("broken gRPC framing (a message, then the start of a second on a unary call): grpc-js answers UNIMPLEMENTED; logged as the client's fault and counted", async () => {
    const warn = jest.spyOn(s.deps.log, "warn");
    const before = await calls(LIST_CONCERTS, "UNIMPLEMENTED");
    const res = await rawGrpc(LIST_CONCERTS, Buffer.from([0, 0, 0, 1, 0, 1, 2]), "short-frame-1");
    expect(res.status).toBe("12");
    expect(res.requestId).toBe("short-frame-1");
    expect(await calls(LIST_CONCERTS, "UNIMPLEMENTED")).toBe(before + 1);
    expect(warn.mock.calls.map((c) => c[0])).toEqual([
      expect.objectContaining({ procedure: LIST_CONCERTS, code: "UNIMPLEMENTED", requestId: "short-frame-1", fault: "client" }),
    ]);
  });

  test("a call that reaches the pipeline is counted once, by the pipeline, and logs no warning", async () => {
    const warn = jest.spyOn(s.deps.log, "warn");
    const before = await calls(LIST_CONCERTS, "OK");
    const client = grpcJsClient(s.port);
    try {
      await unary(client, ConcertService.method.listConcerts, {});
    } finally {
      client.close();
    }
    expect(await calls(LIST_CONCERTS, "OK")).toBe(before + 1);
    expect(warn).not.toHaveBeenCalled();
  });
});
