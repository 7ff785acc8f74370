/**
 * The real server on a free port, over real PostgreSQL and Redis, called the
 * three ways its users call it: a Connect client over gRPC (HTTP/2), a classic
 * grpc-js client, and a browser speaking Connect JSON over HTTP/1.1 with CORS.
 */
import { randomBytes } from "node:crypto";
import { connect as http2Connect, constants as h2 } from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { DEMO_CONCERTS } from "../../src/modules/concert/demo-catalog";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";
import { asConnectError, collect, grpc, grpcJsClient, serverStream, unary, unaryRaw } from "./grpc-js";

const APP_ORIGIN = "https://app.boxoffice.test";
const DEMO_IDS = DEMO_CONCERTS.map((c) => c.id).sort();

let db: TestDatabase;
let s: TestServer;
let grpcJs: grpc.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({
    DATABASE_URL: db.url,
    REDIS_URLS: testRedisUrl(),
    // The Redis is shared with suites running in parallel: keep this queue apart.
    QUEUE_REDIS_PREFIX: `e2e:${randomBytes(4).toString("hex")}:`,
    SEED_DEMO_CATALOG: "true",
    CORS_ORIGINS: APP_ORIGIN,
    METRICS_PORT: "0",
  });
  grpcJs = grpcJsClient(s.port);
});

afterAll(async () => {
  grpcJs?.close();
  await s?.stop();
  await db?.drop();
});

/** POST a Connect unary call as JSON over HTTP/1.1, the way connect-web in a browser does. */
function connectJson(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${s.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", origin: APP_ORIGIN, ...headers },
    body: JSON.stringify(body),
  });
}

describe("Connect client over the gRPC transport (HTTP/2)", () => {
  test("ListConcerts returns the demo catalog and Health.Check answers SERVING", async () => {
    const transport = createGrpcTransport({ baseUrl: s.baseUrl });
    const concerts = createClient(ConcertService, transport);
    const res = await concerts.listConcerts({});
    expect(res.concerts.map((c) => c.concertId)).toEqual(DEMO_IDS);
    const iu = res.concerts.find((c) => c.concertId === "iu-golden-hour-2027");
    expect(iu).toMatchObject({ artist: "IU", venue: "KSPO Dome, Seoul" });

    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await health.check({ service: ConcertService.typeName })).status).toBe(Status.SERVING);
    await expect(health.check({ service: "no.such.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });
});

describe("grpc-js as a classic gRPC client", () => {
  test("unary ListConcerts and Health.Check, with an x-request-id header", async () => {
    const list = await unary(grpcJs, ConcertService.method.listConcerts, {});
    expect(list.message.concerts.map((c) => c.concertId)).toEqual(DEMO_IDS);
    expect(list.headers.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);

    const given = new grpc.Metadata();
    given.set("x-request-id", "trace-e2e-1");
    const check = await unary(grpcJs, Health.method.check, { service: "" }, given);
    expect(check.message.status).toBe(Status.SERVING);
    expect(check.headers.get("x-request-id")).toEqual(["trace-e2e-1"]);
  });

  test("server stream Health/Watch sends SERVING at once and stays open until the client cancels", async () => {
    const call = serverStream(grpcJs, Health.method.watch, { service: QueueService.typeName });
    const ended = collect(call, () => call.cancel());
    const { messages, status } = await ended;
    expect(messages.map((m) => m.status)).toEqual([Status.SERVING]);
    expect(status.code).toBe(grpc.status.CANCELLED);
  });

  test("a method the server does not have answers UNIMPLEMENTED", async () => {
    const err = await unaryRaw(grpcJs, "/boxoffice.wallet.v1.WalletService/Withdraw", Buffer.alloc(0)).catch((e) => e);
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    // grpc-js's own wording.
    expect(err.details).toBe("The server does not implement the method /boxoffice.wallet.v1.WalletService/Withdraw");
  });

  test("a gated call with an ACTIVE token in x-queue-token metadata passes the gate", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("x-queue-token", await activeToken("e2e-grpcjs"));
    const res = await unary(grpcJs, ConcertService.method.listAvailableDates, { concertId: "iu-golden-hour-2027" }, metadata);
    expect(res.message.dates.map((d) => d.date)).toEqual(["2027-03-06", "2027-03-07", "2027-03-13"]);
  });

  test("bad input answers INVALID_ARGUMENT with protovalidate violations", async () => {
    const err = await unary(grpcJs, QueueService.method.issueToken, { userId: "x".repeat(65) }).catch((e) => e);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.metadata.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
    const violations = asConnectError(err).findDetails(ViolationsSchema)[0]?.violations ?? [];
    expect(violations.map((v) => v.ruleId)).toContain("string.max_len");
    expect(violations[0].field?.elements[0]?.fieldName).toBe("user_id");
  });

  test("bytes that do not decode are refused cleanly and the server keeps serving", async () => {
    // A well-framed gRPC message whose payload is not protobuf (a truncated varint field).
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const err = await unaryRaw(grpcJs, "/boxoffice.queue.v1.QueueService/IssueToken", garbage).catch((e) => e);
    // The request is the client's fault: INVALID_ARGUMENT naming the decoding
    // problem and nothing of the server's internals (grpc-js alone would say
    // INTERNAL; the adapter decodes and refuses it itself).
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeURIComponent(err.details)).toMatch(/^cannot decode boxoffice\.queue\.v1\.IssueTokenRequest: /);
    expect(err.details).not.toMatch(/\.(ts|js):\d+/);

    // Not even gRPC framing: a message, then the start of a second one on a
    // unary call. grpc-js answers UNIMPLEMENTED, as the gRPC spec has it.
    const raw = await rawGrpcPost(s.port, "/boxoffice.concert.v1.ConcertService/ListConcerts", Buffer.from([0, 0, 0, 1, 0, 1, 2]));
    expect(raw).toEqual({ httpStatus: 200, grpcStatus: String(grpc.status.UNIMPLEMENTED) });

    const after = await unary(grpcJs, ConcertService.method.listConcerts, {});
    expect(after.message.concerts).toHaveLength(DEMO_IDS.length);
  });
});

describe("Connect JSON over HTTP/1.1 from a browser", () => {
  test("preflight from an allowed origin: 204 with the allowed methods and headers", async () => {
    const res = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListAvailableDates`, {
      method: "OPTIONS",
      headers: {
        origin: APP_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,x-queue-token",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(res.headers.get("vary")).toMatch(/origin/i);
    expect(listOf(res.headers.get("access-control-allow-methods"))).toEqual(expect.arrayContaining(["post", "get"]));
    expect(listOf(res.headers.get("access-control-allow-headers"))).toEqual(
      expect.arrayContaining(["content-type", "connect-protocol-version", "x-queue-token"]),
    );
  });

  test("POST from an allowed origin: CORS headers, JSON body, readable x-request-id", async () => {
    const res = await connectJson("/boxoffice.concert.v1.ConcertService/ListConcerts", {});
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(listOf(res.headers.get("access-control-expose-headers"))).toContain("x-request-id");
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const body = await jsonOf<{ concerts: { concertId: string }[] }>(res);
    expect(body.concerts.map((c) => c.concertId)).toEqual(DEMO_IDS);
  });

  test("a disallowed origin gets no CORS headers", async () => {
    const preflight = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.test", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).not.toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.headers.get("access-control-allow-headers")).toBeNull();

    const post = await connectJson("/boxoffice.concert.v1.ConcertService/ListConcerts", {}, { origin: "https://evil.test" });
    expect(post.headers.get("access-control-allow-origin")).toBeNull();
    await post.arrayBuffer();
  });

  test("bad input: HTTP 400, code invalid_argument, violations in details", async () => {
    const res = await connectJson("/boxoffice.queue.v1.QueueService/IssueToken", { userId: "x".repeat(65) });
    expect(res.status).toBe(400);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const body = await jsonOf<ConnectErrorJson>(res);
    expect(body.code).toBe("invalid_argument");
    const detail = body.details.find((d) => d.type === "buf.validate.Violations");
    const violations = fromBinary(ViolationsSchema, Buffer.from(detail!.value, "base64")).violations;
    expect(violations.map((v) => v.ruleId)).toContain("string.max_len");
  });

  test("a body that is not JSON: HTTP 400, code invalid_argument", async () => {
    const res = await fetch(`${s.baseUrl}/boxoffice.queue.v1.QueueService/IssueToken`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: APP_ORIGIN },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect((await jsonOf<ConnectErrorJson>(res)).code).toBe("invalid_argument");
  });

  test("a gated call: without a token HTTP 400 with an ErrorInfo reason, with an ACTIVE x-queue-token the dates", async () => {
    const path = "/boxoffice.concert.v1.ConcertService/ListAvailableDates";
    const refused = await connectJson(path, { concertId: "iu-golden-hour-2027" });
    expect(refused.status).toBe(400);
    const error = await jsonOf<ConnectErrorJson>(refused);
    expect(error.code).toBe("failed_precondition");
    const info = error.details.find((d) => d.type === "google.rpc.ErrorInfo");
    expect(fromBinary(ErrorInfoSchema, Buffer.from(info!.value, "base64")).reason).toBe("QUEUE_TOKEN_MISSING");

    const res = await connectJson(path, { concertId: "iu-golden-hour-2027" }, { "x-queue-token": await activeToken("e2e-browser") });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect((await jsonOf<{ dates: unknown[] }>(res)).dates).toHaveLength(3);
  });

  test("a procedure the server does not have: HTTP 404, which Connect clients read as unimplemented", async () => {
    const res = await connectJson("/boxoffice.wallet.v1.WalletService/Withdraw", {});
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    await res.arrayBuffer();
  });
});

describe("operations", () => {
  test("/metrics on the metrics port counts every call by procedure and code; the public port has no /metrics", async () => {
    const metric = async () => {
      const text = await (await fetch(`http://127.0.0.1:${s.server.metricsPort}/metrics`)).text();
      const sample = (procedure: string, code: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`rpc_calls_total{procedure="${procedure}",code="${code}"}`));
        return line ? Number(line.split(" ").pop()) : 0;
      };
      return {
        listOk: sample("/boxoffice.concert.v1.ConcertService/ListConcerts", "OK"),
        issueInvalid: sample("/boxoffice.queue.v1.QueueService/IssueToken", "INVALID_ARGUMENT"),
        histogram: text.includes("rpc_duration_seconds_bucket{"),
      };
    };
    const before = await metric();
    await unary(grpcJs, ConcertService.method.listConcerts, {});
    await (await connectJson("/boxoffice.concert.v1.ConcertService/ListConcerts", {})).arrayBuffer();
    await unary(grpcJs, QueueService.method.issueToken, { userId: "" }).catch(() => undefined);
    const after = await metric();
    expect(after.listOk - before.listOk).toBe(2);
    expect(after.issueInvalid - before.issueInvalid).toBe(1);
    expect(after.histogram).toBe(true);

    const publicPort = await fetch(`${s.baseUrl}/metrics`);
    expect(publicPort.status).toBe(404);
    await publicPort.arrayBuffer();
    expect((await fetch(`${s.baseUrl}/healthz`)).status).toBe(200);
  });
});

/** A Connect error in its JSON form: the code's name, and each detail as its type name and base64 binary. */
interface ConnectErrorJson {
  code: string;
  message?: string;
  details: { type: string; value: string }[];
}

/** The body read as the shape the test expects; a wrong guess fails the assertion that reads it. */
const jsonOf = <T>(res: Response): Promise<T> => res.json() as Promise<T>;

/** A queue token once the waiting room has admitted it (the suite's queue admits at once: nobody else waits). */
async function activeToken(userId: string): Promise<string> {
  const issued = await unary(grpcJs, QueueService.method.issueToken, { userId });
  const token = issued.message.ticket!.token;
  for (let i = 0; i < 200; i++) {
    const { message } = await unary(grpcJs, QueueService.method.getQueueStatus, { token });
    if (message.ticket?.status === QueueStatus.ACTIVE) return token;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the token was never admitted");
}

function listOf(header: string | null): string[] {
  return (header ?? "").split(",").map((h) => h.trim().toLowerCase());
}

/** One HTTP/2 gRPC request with a hand-made body, bypassing every client library. */
function rawGrpcPost(port: number, path: string, body: Buffer): Promise<{ httpStatus: number; grpcStatus?: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({
      [h2.HTTP2_HEADER_METHOD]: "POST",
      [h2.HTTP2_HEADER_PATH]: path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    req.on("response", (headers) => {
      httpStatus = Number(headers[h2.HTTP2_HEADER_STATUS]);
      grpcStatus = (headers["grpc-status"] as string | undefined) ?? grpcStatus;
    });
    req.on("trailers", (trailers) => (grpcStatus = (trailers["grpc-status"] as string | undefined) ?? grpcStatus));
    req.on("data", () => undefined);
    req.on("end", () => {
      session.close();
      resolve({ httpStatus, grpcStatus });
    });
    req.on("error", reject);
    req.end(body);
  });
}
