/**
 * Every RPC the protos mark `idempotency_level = NO_SIDE_EFFECTS` can be
 * called with Connect GET (the request in the URL, so a browser or CDN may
 * cache it): against the real server in AUTH_MODE=jwt, each answers a GET
 * exactly as it answers a POST, and the pipeline (bearer token, queue gate)
 * refuses a GET as it refuses a POST.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { ClientRequest } from "node:http";
import { equals, type DescMethod, type DescMethodUnary } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { errorReason } from "../../src/platform/errors";
import { BOXOFFICE_SERVICES } from "../../src/rpc/method-options";
import { withBearer } from "../auth/flow";
import type { TestIssuer } from "../auth/jwt-fixtures";
import { startJwtServer, type JwtServer } from "../auth/jwt-server";
import type { TestServer } from "../harness";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";

let jwtServer: JwtServer;
let s: TestServer;
let idp: TestIssuer;

/** Method and path of every HTTP/1.1 request this process sends while a test runs. */
const sent: string[] = [];
// Under Jest the channel reports each request twice; count each once.
const seen = new WeakSet<ClientRequest>();
const onRequest = (msg: unknown) => {
  const { request } = msg as { request: ClientRequest };
  if (seen.has(request)) return;
  seen.add(request);
  sent.push(`${request.method} ${request.path}`);
};

beforeAll(async () => {
  jwtServer = await startJwtServer("get");
  ({ idp, server: s } = jwtServer);
  subscribe("http.client.request.start", onRequest);
});
afterAll(async () => {
  unsubscribe("http.client.request.start", onRequest);
  await jwtServer?.stop();
});
beforeEach(() => {
  sent.length = 0;
});

const transport = (useHttpGet: boolean, jwt?: string): Transport =>
  withBearer(createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1", useHttpGet }), jwt);

const noSideEffects = BOXOFFICE_SERVICES.flatMap((svc) => svc.methods).filter((m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);

test("the read-only RPCs are the NO_SIDE_EFFECTS ones; GetQueueStatus is deliberately not", () => {
  expect(noSideEffects.map((m) => `${m.parent.name}/${m.name}`).sort()).toEqual([
    "ConcertService/ListAvailableDates",
    "ConcertService/ListAvailableSeats",
    "ConcertService/ListConcerts",
    "ReservationService/GetReservation",
    "ReservationService/ListReservations",
    "WalletService/GetBalance",
    "WalletService/ListWalletEntries",
  ]);
  expect(QueueService.method.getQueueStatus.idempotency).not.toBe(MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
});

/** One unary call's answer (or refusal) with the given transport. */
async function answer(t: Transport, method: DescMethod, input: object, headers: Record<string, string> = {}) {
  if (method.methodKind !== "unary") throw new Error(`${method.name}: Connect GET is for unary RPCs`);
  try {
    const res = await t.unary(method as DescMethodUnary, undefined, undefined, headers, input as never, undefined);
    return { message: res.message };
  } catch (err) {
    return { code: ConnectError.from(err).code, reason: errorReason(err) };
  }
}

test("each NO_SIDE_EFFECTS RPC answers a Connect GET exactly as a POST", async () => {
  const fan = await idp.sign({ sub: "get-fan" });
  const provider = await idp.sign({ sub: "payments-svc", scope: "wallet:charge" });
  await createClient(WalletService, transport(false, provider)).chargeBalance({ userId: "get-fan", amount: 300_000n, idempotencyKey: "get-topup" });
  const post = transport(false, fan);
  const queue = createClient(QueueService, post);
  const { ticket } = await queue.issueToken({});
  await s.deps.queue.tick();
  expect((await queue.getQueueStatus({ token: ticket!.token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  const gated = { "x-queue-token": ticket!.token };
  const held = await createClient(ReservationService, post).holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 7 }, { headers: gated });
  const reservationId = held.reservation!.reservationId;

  const calls: Record<string, [object, Record<string, string>?]> = {
    ListConcerts: [{}],
    ListAvailableDates: [{ concertId: CONCERT }, gated],
    ListAvailableSeats: [{ concertId: CONCERT, date: DATE }, gated],
    GetReservation: [{ reservationId }],
    ListReservations: [{}],
    GetBalance: [{}],
    ListWalletEntries: [{}],
  };
  expect(Object.keys(calls).sort()).toEqual(noSideEffects.map((m) => m.name).sort());

  const get = transport(true, fan);
  for (const method of noSideEffects) {
    const [input, headers] = calls[method.name];
    sent.length = 0;
    const byGet = await answer(get, method, input, headers);
    const path = `/${method.parent.typeName}/${method.name}`;
    expect(sent).toEqual([expect.stringMatching(new RegExp(`^GET ${path.replace(/\./g, "\\.")}\\?`))]);
    const byPost = await answer(post, method, input, headers);
    expect({ method: method.name, ok: "message" in byGet && "message" in byPost }).toEqual({ method: method.name, ok: true });
    expect({ method: method.name, same: equals(method.output, byGet.message!, byPost.message!) }).toEqual({ method: method.name, same: true });
  }
  // Not trivially equal: the answers carry what was set up above.
  const seats = await createClient(ConcertService, get).listAvailableSeats({ concertId: CONCERT, date: DATE }, { headers: gated });
  expect(seats.seats.map((x) => x.seatNumber)).not.toContain(7);
  expect((await createClient(WalletService, get).getBalance({})).balance).toBe(300_000n);
  expect((await createClient(ReservationService, get).getReservation({ reservationId })).reservation?.userId).toBe("get-fan");
});

test("a GET is refused as a POST is: no bearer token, no queue token, another user's data", async () => {
  const fan = await idp.sign({ sub: "get-other" });
  const cases: [DescMethodUnary, object, Record<string, string>, Transport, Transport][] = [
    [WalletService.method.getBalance, {}, {}, transport(true), transport(false)],
    [ConcertService.method.listAvailableDates, { concertId: CONCERT }, {}, transport(true, fan), transport(false, fan)],
    [WalletService.method.getBalance, { userId: "get-fan" }, {}, transport(true, fan), transport(false, fan)],
  ];
  const refusals = [];
  for (const [method, input, headers, get, post] of cases) {
    const byGet = await answer(get, method, input, headers);
    expect(byGet).toEqual(await answer(post, method, input, headers));
    refusals.push(byGet);
  }
  expect(refusals).toEqual([
    { code: Code.Unauthenticated, reason: "AUTH_TOKEN_MISSING" },
    { code: Code.FailedPrecondition, reason: "QUEUE_TOKEN_MISSING" },
    { code: Code.PermissionDenied, reason: "USER_MISMATCH" },
  ]);
  // Still public by GET: the catalog, without a bearer token.
  expect((await createClient(ConcertService, transport(true)).listConcerts({})).concerts.length).toBeGreaterThan(0);
});
