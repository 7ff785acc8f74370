/**
 * The attacks that worked before authentication existed, replayed against the
 * real server in AUTH_MODE=jwt (real PostgreSQL and Redis, keys made here with
 * jose): each must now fail safely and change nothing.
 */
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { errorReason } from "../../src/platform/errors";
import type { TestServer } from "../harness";
import { bookingFlow, clients, transportsFor, withBearer } from "./flow";
import { epoch, type TestIssuer } from "./jwt-fixtures";
import { startJwtServer, type JwtServer } from "./jwt-server";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";

let jwtServer: JwtServer;
let s: TestServer;
let idp: TestIssuer;

beforeAll(async () => {
  jwtServer = await startJwtServer("attack");
  ({ idp, server: s } = jwtServer);
  Object.assign(transports, transportsFor(s.baseUrl));
});
afterAll(() => jwtServer?.stop());

const transports: Record<string, () => Transport> = {};

/** Clients that send `jwt` (if any) as a bearer token on every call. */
function api(jwt?: string, transport: Transport = transports.gRPC()) {
  return clients(withBearer(transport, jwt));
}
type Api = ReturnType<typeof api>;

async function refusal(p: Promise<unknown>): Promise<{ code: Code; reason?: string }> {
  try {
    await p;
  } catch (err) {
    return { code: ConnectError.from(err).code, reason: errorReason(err) };
  }
  throw new Error("expected the call to be refused");
}

/** A user with an ACTIVE queue token: the headers for gated calls. */
async function activeUser(a: Api): Promise<{ token: string; headers: Record<string, string> }> {
  const { ticket } = await a.queue.issueToken({});
  await s.deps.queue.tick();
  expect((await a.queue.getQueueStatus({ token: ticket!.token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  return { token: ticket!.token, headers: { "x-queue-token": ticket!.token } };
}

const payments = () => idp.sign({ sub: "payments-svc", scope: "wallet:charge" });

test("anonymous calls are UNAUTHENTICATED and do nothing; 520 made-up IssueTokens leave the room empty", async () => {
  const anon = api();
  expect(await refusal(anon.queue.issueToken({ userId: "victim" }))).toEqual({ code: Code.Unauthenticated, reason: "AUTH_TOKEN_MISSING" });
  expect(await refusal(anon.wallet.chargeBalance({ userId: "victim", amount: 1000n }))).toMatchObject({ code: Code.Unauthenticated });
  expect(await refusal(anon.reservations.listReservations({ userId: "victim" }))).toMatchObject({ code: Code.Unauthenticated });
  // The catalog stays public: the on-sale page shows it before sign-in.
  expect((await anon.concerts.listConcerts({})).concerts.length).toBeGreaterThan(0);

  const before = await s.deps.queue.tick();
  const results = await Promise.all(Array.from({ length: 520 }, (_, i) => refusal(anon.queue.issueToken({ userId: `fake-${i}` })).then((r) => r.code)));
  expect(new Set(results)).toEqual(new Set([Code.Unauthenticated]));
  const after = await s.deps.queue.tick();
  expect({ waiting: after!.waiting, active: after!.active }).toEqual({ waiting: before!.waiting, active: before!.active });
});

test("over Connect a missing or bad token is HTTP 401 with a reason", async () => {
  const post = (authorization?: string) =>
    fetch(`${s.baseUrl}/boxoffice.wallet.v1.WalletService/GetBalance`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      body: JSON.stringify({}),
    });
  const missing = await post();
  expect(missing.status).toBe(401);
  expect(JSON.stringify(await missing.json())).toContain("AUTH_TOKEN_MISSING");
  const expired = await post(`Bearer ${await idp.sign({ exp: epoch() - 3600 })}`);
  expect(expired.status).toBe(401);
  expect(JSON.stringify(await expired.json())).toContain("AUTH_TOKEN_EXPIRED");
  const forged = await post(`Bearer ${await idp.forgeHmacWithPublicKey({ sub: "victim" })}`);
  expect(forged.status).toBe(401);
  const unsigned = await post(`Bearer ${idp.forgeUnsigned({ sub: "victim" })}`);
  expect(unsigned.status).toBe(401);
});

test("nobody acts as the victim: queue, holds, payment, reservations, wallet", async () => {
  const victim = api(await idp.sign({ sub: "victim-1" }));
  const mallory = api(await idp.sign({ sub: "mallory-1" }));
  const pay = api(await payments());
  await pay.wallet.chargeBalance({ userId: "victim-1", amount: 500_000n, idempotencyKey: "victim-topup" });
  await pay.wallet.chargeBalance({ userId: "mallory-1", amount: 500_000n, idempotencyKey: "mallory-topup" });

  // IssueToken in the victim's name.
  expect(await refusal(mallory.queue.issueToken({ userId: "victim-1" }))).toEqual({ code: Code.PermissionDenied, reason: "USER_MISMATCH" });

  const v = await activeUser(victim);
  const m = await activeUser(mallory);
  const { reservation } = await victim.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 11 }, { headers: v.headers });
  const id = reservation!.reservationId;

  // The victim's queue token, stolen, is not Mallory's to use: no hold, no status, no watch.
  expect(await refusal(mallory.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 12 }, { headers: v.headers }))).toEqual({
    code: Code.PermissionDenied,
    reason: "QUEUE_TOKEN_NOT_YOURS",
  });
  expect(await refusal(mallory.queue.getQueueStatus({ token: v.token }))).toMatchObject({ code: Code.PermissionDenied, reason: "QUEUE_TOKEN_NOT_YOURS" });
  const watch = async () => {
    for await (const _ of mallory.queue.watchQueueStatus({ token: v.token })) break;
  };
  expect(await refusal(watch())).toMatchObject({ code: Code.PermissionDenied, reason: "QUEUE_TOKEN_NOT_YOURS" });
  expect(await refusal(mallory.reservations.cancelHold({ reservationId: id }, { headers: v.headers }))).toMatchObject({
    code: Code.PermissionDenied,
  });
  expect(await refusal(mallory.reservations.payReservation({ reservationId: id }, { headers: v.headers }))).toMatchObject({
    code: Code.PermissionDenied,
  });

  // With her own ACTIVE token, the victim's hold is not hers: it reads as absent.
  expect(await refusal(mallory.reservations.cancelHold({ reservationId: id }, { headers: m.headers }))).toEqual({
    code: Code.NotFound,
    reason: "RESERVATION_NOT_FOUND",
  });
  expect((await refusal(mallory.reservations.payReservation({ reservationId: id }, { headers: m.headers }))).code).toBe(Code.NotFound);
  expect(await refusal(mallory.reservations.getReservation({ reservationId: id }))).toEqual({ code: Code.NotFound, reason: "RESERVATION_NOT_FOUND" });

  // Reading the victim's reservations and wallet.
  expect(await refusal(mallory.reservations.listReservations({ userId: "victim-1" }))).toEqual({ code: Code.PermissionDenied, reason: "USER_MISMATCH" });
  expect(await refusal(mallory.wallet.getBalance({ userId: "victim-1" }))).toEqual({ code: Code.PermissionDenied, reason: "USER_MISMATCH" });
  expect(await refusal(mallory.wallet.listWalletEntries({ userId: "victim-1" }))).toEqual({ code: Code.PermissionDenied, reason: "USER_MISMATCH" });

  // Nothing changed for the victim, who still holds, pays and reads normally.
  expect((await victim.reservations.getReservation({ reservationId: id })).reservation?.status).toBe(ReservationStatus.HELD);
  expect((await victim.wallet.getBalance({})).balance).toBe(500_000n);
  expect((await mallory.wallet.getBalance({ userId: "mallory-1" })).balance).toBe(500_000n);
  const paid = await victim.reservations.payReservation({ reservationId: id, idempotencyKey: "v-pay" }, { headers: v.headers });
  expect(paid.reservation?.status).toBe(ReservationStatus.CONFIRMED);
  expect((await victim.reservations.listReservations({})).reservations.map((r) => r.reservationId)).toEqual([id]);
  expect(await checkInvariants(s.deps.orm.em.fork())).toEqual([]);
});

test("the wallet mints no money: ChargeBalance needs wallet:charge", async () => {
  const user = api(await idp.sign({ sub: "minter-1" }));
  expect(await refusal(user.wallet.chargeBalance({ userId: "minter-1", amount: 10_000_000n }))).toEqual({
    code: Code.PermissionDenied,
    reason: "SCOPE_REQUIRED",
  });
  // boxoffice:service acts for users, but does not credit wallets either.
  const service = api(await idp.sign({ sub: "orders-svc", scope: "boxoffice:service" }));
  expect(await refusal(service.wallet.chargeBalance({ userId: "minter-1", amount: 1000n }))).toMatchObject({ reason: "SCOPE_REQUIRED" });
  expect((await user.wallet.getBalance({})).balance).toBe(0n);

  const provider = api(await payments());
  const r = await provider.wallet.chargeBalance({ userId: "minter-1", amount: 25_000n, idempotencyKey: "topup-1" });
  expect(r.balance).toBe(25_000n);
  expect((await user.wallet.getBalance({})).balance).toBe(25_000n);
});

test("boxoffice:service reads for any user; gated calls still need that user's ACTIVE token", async () => {
  const service = api(await idp.sign({ sub: "support-svc", scope: "boxoffice:service" }));
  const fan = api(await idp.sign({ sub: "fan-svc-1" }));
  const f = await activeUser(fan);
  const { reservation } = await fan.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 21 }, { headers: f.headers });

  expect((await service.reservations.listReservations({ userId: "fan-svc-1" })).reservations).toHaveLength(1);
  expect((await service.reservations.getReservation({ reservationId: reservation!.reservationId })).reservation?.userId).toBe("fan-svc-1");
  expect((await service.wallet.getBalance({ userId: "fan-svc-1" })).balance).toBe(0n);
  // A gated call for the fan works only with the fan's token, and acts as the fan.
  expect(await refusal(service.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 22 }))).toMatchObject({
    code: Code.FailedPrecondition,
    reason: "QUEUE_TOKEN_MISSING",
  });
  const held = await service.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 22 }, { headers: f.headers });
  expect(held.reservation?.userId).toBe("fan-svc-1");
});

test("made-up users cannot fill the room: one identity is one place in line", async () => {
  const before = await s.deps.queue.tick();
  const mallory = api(await idp.sign({ sub: "filler-1" }));
  const tickets = await Promise.all(Array.from({ length: 50 }, () => mallory.queue.issueToken({})));
  expect(new Set(tickets.map((t) => t.ticket!.token)).size).toBe(1);
  const others = await Promise.all(Array.from({ length: 50 }, (_, i) => refusal(mallory.queue.issueToken({ userId: `filler-fake-${i}` }))));
  expect(new Set(others.map((o) => o.reason))).toEqual(new Set(["USER_MISMATCH"]));
  const after = await s.deps.queue.tick();
  expect(after!.waiting + after!.active).toBe(before!.waiting + before!.active + 1);
});

describe.each(["gRPC", "Connect (HTTP/1.1)"])("the booking flow in jwt mode over %s", (name) => {
  test("queue, dates, seats, hold, charge by the provider, pay, read back", async () => {
    const sub = `flow-${name.startsWith("g") ? "grpc" : "connect"}`;
    const transport = transports[name]();
    await bookingFlow(s, withBearer(transport, await idp.sign({ sub })), withBearer(transport, await payments()), sub, "");
  });
});
