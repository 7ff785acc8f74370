/**
 * Every RPC over every protocol the port speaks, compared: gRPC from a classic
 * grpc-js client and from connect-node's gRPC transport (both served by the
 * grpc-js server), Connect JSON and gRPC-Web over HTTP/1.1 (served by
 * connect-node). One scenario, one outcome per call (code, reason, the shape
 * of the answer, a request id), and the calls each protocol added to the
 * metrics: all must be the same, whichever stack carried them.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { Health } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";
import { grpcJsClient, type grpc } from "./grpc-js";
import { grpcJsTransport } from "./grpc-js-transport";

let db: TestDatabase;
let s: TestServer;
const grpcJs: grpc.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer(
    {
      DATABASE_URL: db.url,
      REDIS_URLS: testRedisUrl(),
      QUEUE_REDIS_PREFIX: `protocols:${randomBytes(4).toString("hex")}:`,
      SEED_DEMO_CATALOG: "true",
    },
    { startQueue: false },
  );
});

afterAll(async () => {
  for (const c of grpcJs) c.close();
  await s?.stop();
  await db?.drop();
});

const PROTOCOLS: Record<string, () => Transport> = {
  "gRPC (grpc-js client)": () => {
    const c = grpcJsClient(s.port);
    grpcJs.push(c);
    return grpcJsTransport(c);
  },
  "gRPC (connect-node client)": () => createGrpcTransport({ baseUrl: s.baseUrl }),
  "Connect JSON (HTTP/1.1)": () => createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }),
  "gRPC-Web (HTTP/1.1)": () => createGrpcWebTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }),
};

interface Outcome {
  call: string;
  code: string;
  reason?: string;
  violations?: string[];
  /** Field names that are set in the answer: the shape, not the values (ids and times differ per run). */
  shape?: string[];
  requestId: boolean;
}

function shapeOf(message: object): string[] {
  return (
    Object.entries(message)
      // Lists count as present even when empty: what they hold depends on the runs before.
      .filter(([k, v]) => k !== "$typeName" && v !== undefined && v !== "" && v !== 0 && v !== 0n)
      .map(([k]) => k)
      .sort()
  );
}

/** Runs `call`, recording what came back; the answer (or undefined on a refusal) for the next steps. */
async function record<T extends object>(
  outcomes: Outcome[],
  name: string,
  call: (o: { onHeader: (h: Headers) => void }) => Promise<T>,
): Promise<T | undefined> {
  let requestId = false;
  const onHeader = (h: Headers) => (requestId ||= /^[0-9a-f-]{36}$/.test(h.get("x-request-id") ?? ""));
  try {
    const res = await call({ onHeader });
    outcomes.push({ call: name, code: "OK", shape: shapeOf(res), requestId });
    return res;
  } catch (err) {
    const e = ConnectError.from(err);
    outcomes.push({
      call: name,
      code: Code[e.code],
      reason: e.findDetails(ErrorInfoSchema)[0]?.reason,
      violations: e.findDetails(ViolationsSchema)[0]?.violations.map((v) => v.ruleId),
      requestId: /^[0-9a-f-]{36}$/.test(e.metadata.get("x-request-id") ?? ""),
    });
    return undefined;
  }
}

async function scenario(transport: Transport, userId: string, seatNumber: number): Promise<Outcome[]> {
  const queue = createClient(QueueService, transport);
  const concerts = createClient(ConcertService, transport);
  const reservations = createClient(ReservationService, transport);
  const wallet = createClient(WalletService, transport);
  const health = createClient(Health, transport);
  const out: Outcome[] = [];
  const concertId = "iu-golden-hour-2027";
  const date = "2027-03-13";

  await record(out, "Health.Check", ({ onHeader }) => health.check({ service: "" }, { onHeader }));
  await record(out, "Health.Check unknown", ({ onHeader }) => health.check({ service: "no.such.Service" }, { onHeader }));
  const issued = await record(out, "IssueToken", ({ onHeader }) => queue.issueToken({ userId }, { onHeader }));
  await record(out, "IssueToken bad user", ({ onHeader }) => queue.issueToken({ userId: "x".repeat(300) }, { onHeader }));
  const token = issued!.ticket!.token;
  await record(out, "GetQueueStatus waiting", ({ onHeader }) => queue.getQueueStatus({ token }, { onHeader }));
  await record(out, "ListAvailableDates waiting", ({ onHeader }) =>
    concerts.listAvailableDates({ concertId }, { onHeader, headers: { "x-queue-token": token } }),
  );
  await s.deps.queue.tick();
  await record(out, "GetQueueStatus active", ({ onHeader }) => queue.getQueueStatus({ token }, { onHeader }));
  await record(out, "WatchQueueStatus", async ({ onHeader }) => {
    // The first update, then the client ends the stream the documented way: aborting its signal.
    const watching = new AbortController();
    try {
      for await (const m of queue.watchQueueStatus({ token }, { onHeader, signal: watching.signal })) {
        watching.abort();
        return m;
      }
    } finally {
      watching.abort();
    }
    throw new Error("the stream ended without an update");
  });
  await record(out, "GetQueueStatus bad token", ({ onHeader }) => queue.getQueueStatus({ token: "nonsense" }, { onHeader }));
  const headers = { "x-queue-token": token };

  await record(out, "ListConcerts", ({ onHeader }) => concerts.listConcerts({}, { onHeader }));
  await record(out, "ListAvailableDates no token", ({ onHeader }) => concerts.listAvailableDates({ concertId }, { onHeader }));
  await record(out, "ListAvailableDates", ({ onHeader }) => concerts.listAvailableDates({ concertId }, { onHeader, headers }));
  await record(out, "ListAvailableSeats", ({ onHeader }) => concerts.listAvailableSeats({ concertId, date }, { onHeader, headers }));
  await record(out, "ListAvailableSeats bad date", ({ onHeader }) => concerts.listAvailableSeats({ concertId, date: "13/03/2027" }, { onHeader, headers }));

  await record(out, "ChargeBalance", ({ onHeader }) => wallet.chargeBalance({ userId, amount: 300_000n, idempotencyKey: `${userId}-charge` }, { onHeader }));
  await record(out, "ChargeBalance retried", ({ onHeader }) =>
    wallet.chargeBalance({ userId, amount: 300_000n, idempotencyKey: `${userId}-charge` }, { onHeader }),
  );
  await record(out, "ChargeBalance negative", ({ onHeader }) => wallet.chargeBalance({ userId, amount: -5n, idempotencyKey: `${userId}-neg` }, { onHeader }));
  await record(out, "GetBalance", ({ onHeader }) => wallet.getBalance({ userId }, { onHeader }));

  const held = await record(out, "HoldSeat", ({ onHeader }) => reservations.holdSeat({ concertId, date, seatNumber }, { onHeader, headers }));
  await record(out, "HoldSeat same seat again", ({ onHeader }) => reservations.holdSeat({ concertId, date, seatNumber }, { onHeader, headers }));
  await record(out, "HoldSeat seat 0", ({ onHeader }) => reservations.holdSeat({ concertId, date, seatNumber: 0 }, { onHeader, headers }));
  const reservationId = held!.reservation!.reservationId;
  await record(out, "CancelHold", ({ onHeader }) => reservations.cancelHold({ reservationId }, { onHeader, headers }));
  const again = await record(out, "HoldSeat again", ({ onHeader }) => reservations.holdSeat({ concertId, date, seatNumber }, { onHeader, headers }));
  const payId = again!.reservation!.reservationId;
  await record(out, "PayReservation", ({ onHeader }) =>
    reservations.payReservation({ reservationId: payId, idempotencyKey: `${userId}-pay` }, { onHeader, headers }),
  );
  await record(out, "PayReservation retried (token spent)", ({ onHeader }) =>
    reservations.payReservation({ reservationId: payId, idempotencyKey: `${userId}-pay` }, { onHeader, headers }),
  );
  await record(out, "PayReservation other key (token spent)", ({ onHeader }) =>
    reservations.payReservation({ reservationId: payId, idempotencyKey: `${userId}-pay-2` }, { onHeader, headers }),
  );
  await record(out, "GetReservation", ({ onHeader }) => reservations.getReservation({ reservationId: payId }, { onHeader }));
  await record(out, "GetReservation unknown", ({ onHeader }) =>
    reservations.getReservation({ reservationId: "00000000-0000-4000-8000-000000000000" }, { onHeader }),
  );
  await record(out, "ListReservations", ({ onHeader }) => reservations.listReservations({ userId }, { onHeader }));
  await record(out, "ListWalletEntries", ({ onHeader }) => wallet.listWalletEntries({ userId }, { onHeader }));
  return out;
}

/** rpc_calls_total by procedure and code, as the metrics registry has it now. */
async function callCounts(): Promise<Map<string, number>> {
  const metric = await s.deps.metrics.rpcCalls.get();
  return new Map(metric.values.map((v) => [`${v.labels.procedure} ${v.labels.code}`, v.value]));
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) d[k] = v - (before.get(k) ?? 0);
  return d;
}

test("every RPC answers the same over gRPC (grpc-js and connect clients), Connect and gRPC-Web", async () => {
  const results: Record<string, { outcomes: Outcome[]; counted: Record<string, number> }> = {};
  let seat = 11;
  for (const [name, transport] of Object.entries(PROTOCOLS)) {
    const before = await callCounts();
    const outcomes = await scenario(transport(), `proto-${seat}-${randomBytes(3).toString("hex")}`, seat++);
    // A stream the client ended is logged and counted when the server notices: give it a moment.
    await new Promise((r) => setTimeout(r, 200));
    results[name] = { outcomes, counted: delta(before, await callCounts()) };
  }
  const [first, ...rest] = Object.keys(results);
  const reference = results[first];
  // The reference itself is what the contract says.
  const byCall = Object.fromEntries(reference.outcomes.map((o) => [o.call, o]));
  expect(byCall.IssueToken.code).toBe("OK");
  expect(byCall["ListAvailableDates waiting"]).toMatchObject({ code: "FailedPrecondition", reason: "QUEUE_TOKEN_WAITING" });
  expect(byCall["ListAvailableDates no token"]).toMatchObject({ code: "FailedPrecondition", reason: "QUEUE_TOKEN_MISSING" });
  expect(byCall["IssueToken bad user"]).toMatchObject({ code: "InvalidArgument", violations: ["string.max_len"] });
  expect(byCall["HoldSeat same seat again"].code).toBe("OK"); // the buyer's own hold, answered again
  expect(byCall.PayReservation.code).toBe("OK");
  expect(byCall["PayReservation retried (token spent)"].code).toBe("OK");
  expect(byCall["PayReservation other key (token spent)"]).toMatchObject({ code: "FailedPrecondition", reason: "QUEUE_TOKEN_EXPIRED" });
  expect(byCall["Health.Check unknown"].code).toBe("NotFound");
  for (const o of reference.outcomes) expect({ call: o.call, requestId: o.requestId }).toEqual({ call: o.call, requestId: true });
  expect(reference.counted["/boxoffice.queue.v1.QueueService/WatchQueueStatus CANCELLED"]).toBe(1);
  for (const name of rest) {
    expect({ protocol: name, outcomes: results[name].outcomes }).toEqual({ protocol: name, outcomes: reference.outcomes });
    expect({ protocol: name, counted: results[name].counted }).toEqual({ protocol: name, counted: reference.counted });
  }
});
