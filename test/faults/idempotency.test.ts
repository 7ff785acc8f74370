/**
 * Retries after lost answers, as a client sees them: two server instances on
 * one PostgreSQL and one Redis (shared queue, tokens and locks); the first
 * call goes to one, its retry with the same idempotency key to the other.
 * Every test ends with the money and seat invariants.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationStatus } from "../../gen/boxoffice/reservation/v1/reservation_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { checkInvariants } from "../../src/modules/payment/invariants";
import { ManualClock } from "../../src/platform/clock";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";

const CONCERT = "iu-golden-hour-2027";
const DATE = "2027-03-06";
const OTHER_DATE = "2027-03-07";
const HOLD_TTL_MS = 5 * 60_000;

interface Api {
  queue: Client<typeof QueueService>;
  reservations: Client<typeof ReservationService>;
  wallet: Client<typeof WalletService>;
}

const clock = new ManualClock(Date.parse("2026-12-01T10:00:00Z"));
/** Users and keys of this run: the Redis (queue and lock keys) is shared with suites running in parallel. */
const run = randomBytes(3).toString("hex");
const user = (name: string) => `${name}-${run}`;

let db: TestDatabase;
let a: TestServer;
let b: TestServer;
/** Instance A over Connect (HTTP/1.1), instance B over gRPC (HTTP/2). */
let onA: Api;
let onB: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    DATABASE_URL: db.url,
    REDIS_URLS: testRedisUrl(),
    QUEUE_REDIS_PREFIX: `idem:${run}:`,
    SEED_DEMO_CATALOG: "true",
    HOLD_TTL: "5m",
    HOLD_MAX_PER_USER: "2",
    DB_POOL_MAX: "10",
  };
  a = await startTestServer(env, { clock, startQueue: false });
  b = await startTestServer(env, { clock, startQueue: false });
  const api = (transport: ReturnType<typeof createGrpcTransport>): Api => ({
    queue: createClient(QueueService, transport),
    reservations: createClient(ReservationService, transport),
    wallet: createClient(WalletService, transport),
  });
  onA = api(createConnectTransport({ baseUrl: a.baseUrl, httpVersion: "1.1" }));
  onB = api(createGrpcTransport({ baseUrl: b.baseUrl }));
});
afterEach(async () => {
  expect(await checkInvariants(a.deps.orm.em.fork())).toEqual([]);
});
afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await db?.drop();
});

/** A fresh ACTIVE token for `userId`, as the x-queue-token header. */
async function admitted(userId: string): Promise<{ token: string; headers: Record<string, string> }> {
  const token = (await onA.queue.issueToken({ userId })).ticket!.token;
  await a.deps.queue.tick();
  expect((await onB.queue.getQueueStatus({ token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  return { token, headers: { "x-queue-token": token } };
}

/** How a call that must fail failed. */
async function refusal(p: Promise<unknown>): Promise<{ code: Code; reason?: string }> {
  const err = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e) => ConnectError.from(e),
  );
  return { code: err.code, reason: err.findDetails(ErrorInfoSchema)[0]?.reason };
}

const refused = (reason: string, code = Code.FailedPrecondition) => ({ code, reason });

/** What the database holds for a user: reservations, payments, ledger lines, balance. */
async function footprint(userId: string) {
  const [row] = await a.deps.orm.em.fork().execute<{ reservations: string; held: string; payments: string; entries: string; balance: string | null }[]>(
    `select (select count(*) from reservation where user_id = ?) as reservations,
            (select count(*) from reservation where user_id = ? and status = 'HELD' and hold_expires_at > ?) as held,
            (select count(*) from payment where user_id = ?) as payments,
            (select count(*) from wallet_entry where user_id = ?) as entries,
            (select balance from wallet where user_id = ?) as balance`,
    [userId, userId, clock.now(), userId, userId, userId],
  );
  return {
    reservations: Number(row.reservations),
    held: Number(row.held),
    payments: Number(row.payments),
    entries: Number(row.entries),
    balance: Number(row.balance ?? 0),
  };
}

describe("PayReservation: a lost answer after the payment spent the token", () => {
  test("the retry on the other instance, same key and same token, gets the identical first result and moves no money", async () => {
    const fan = user("payer");
    const { token, headers } = await admitted(fan);
    await onA.wallet.chargeBalance({ userId: fan, amount: 500_000n, idempotencyKey: "topup-1" });
    const { reservation } = await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 1 }, { headers });
    const id = reservation!.reservationId;

    const first = await onA.reservations.payReservation({ reservationId: id, idempotencyKey: "order-1" }, { headers });
    expect(first.reservation?.status).toBe(ReservationStatus.CONFIRMED);
    expect((await onB.queue.getQueueStatus({ token })).ticket?.status).toBe(QueueStatus.EXPIRED);
    const after = await footprint(fan);

    // The answer was lost; the client retries on the other instance.
    const retry = await onB.reservations.payReservation({ reservationId: id, idempotencyKey: "order-1" }, { headers });
    expect(retry).toEqual(first);
    const again = await onA.reservations.payReservation({ reservationId: id, idempotencyKey: "order-1" }, { headers });
    expect(again).toEqual(first);
    expect(await footprint(fan)).toEqual(after);
    expect(after).toMatchObject({ payments: 1, entries: 2, balance: 500_000 - Number(first.payment!.amount) });

    // The spent token opens nothing else.
    expect(await refusal(onB.reservations.payReservation({ reservationId: id }, { headers }))).toEqual(refused("QUEUE_TOKEN_EXPIRED"));
    expect(await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "order-2" }, { headers }))).toEqual(
      refused("QUEUE_TOKEN_EXPIRED"),
    );
    expect(await refusal(onB.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 2 }, { headers }))).toEqual(refused("QUEUE_TOKEN_EXPIRED"));
    // The charge's key completed no payment: the token's refusal stands.
    expect(await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "topup-1" }, { headers }))).toEqual(
      refused("QUEUE_TOKEN_EXPIRED"),
    );
    // The key paid this reservation, not another one.
    const other = await admitted(fan);
    const { reservation: second } = await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 2 }, { headers: other.headers });
    expect(await refusal(onB.reservations.payReservation({ reservationId: second!.reservationId, idempotencyKey: "order-1" }, { headers }))).toEqual(
      refused("IDEMPOTENCY_KEY_REUSED"),
    );
    expect(
      await refusal(onB.reservations.payReservation({ reservationId: second!.reservationId, idempotencyKey: "order-1" }, { headers: other.headers })),
    ).toEqual(refused("IDEMPOTENCY_KEY_REUSED"));
    expect(await footprint(fan)).toEqual({ ...after, reservations: 2, held: 1 });
  });

  test("an expired token whose key completed no payment is refused, and pays nothing", async () => {
    const fan = user("late");
    const { token, headers } = await admitted(fan);
    await onA.wallet.chargeBalance({ userId: fan, amount: 500_000n });
    const { reservation } = await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 3 }, { headers });
    await a.deps.queue.expireAfterPayment(token); // the token ends without a payment (as by its TTL)
    const before = await footprint(fan);
    for (const api of [onA, onB]) {
      expect(await refusal(api.reservations.payReservation({ reservationId: reservation!.reservationId, idempotencyKey: "never-paid" }, { headers }))).toEqual(
        refused("QUEUE_TOKEN_EXPIRED"),
      );
    }
    expect(await footprint(fan)).toEqual(before);
    expect(before).toMatchObject({ held: 1, payments: 0, entries: 1 });
  });

  test("the key is looked up for the spent token's own user; waiting and forged tokens are refused as before", async () => {
    const payer = user("owner");
    const { headers } = await admitted(payer);
    await onA.wallet.chargeBalance({ userId: payer, amount: 500_000n });
    const { reservation } = await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 4 }, { headers });
    const id = reservation!.reservationId;
    await onA.reservations.payReservation({ reservationId: id, idempotencyKey: "shared-key" }, { headers });

    // Someone else's spent token with the payer's key finds no payment of theirs.
    const stranger = user("stranger");
    const theirs = await admitted(stranger);
    await a.deps.queue.expireAfterPayment(theirs.token);
    expect(await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "shared-key" }, { headers: theirs.headers }))).toEqual(
      refused("QUEUE_TOKEN_EXPIRED"),
    );

    // A waiting token (the payer queued again and was not admitted yet) is refused as ever.
    const waiting = (await onA.queue.issueToken({ userId: payer })).ticket!.token;
    expect(
      await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "shared-key" }, { headers: { "x-queue-token": waiting } })),
    ).toEqual(refused("QUEUE_TOKEN_WAITING"));
    const forged = `${waiting.slice(0, -4)}AAAA`;
    expect(
      await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "shared-key" }, { headers: { "x-queue-token": forged } })),
    ).toEqual(refused("QUEUE_TOKEN_INVALID"));
    expect(await refusal(onB.reservations.payReservation({ reservationId: id, idempotencyKey: "shared-key" }))).toEqual(refused("QUEUE_TOKEN_MISSING"));
    await a.deps.queue.tick(); // let the waiting token in, so later tests see a tidy queue
  });
});

describe("HoldSeat retries", () => {
  test("a retry with the key on the other instance returns the first hold; the key names one seat", async () => {
    const fan = user("holder");
    const { headers } = await admitted(fan);
    const req = { concertId: CONCERT, date: DATE, seatNumber: 10, idempotencyKey: "hold-10" };
    const first = await onA.reservations.holdSeat(req, { headers });
    const retry = await onB.reservations.holdSeat(req, { headers });
    expect(retry).toEqual(first);
    expect(await footprint(fan)).toMatchObject({ reservations: 1, held: 1 });

    for (const other of [{ seatNumber: 11 }, { date: OTHER_DATE }, { concertId: "bts-permission-to-dance-2027" }]) {
      expect(await refusal(onB.reservations.holdSeat({ ...req, ...other }, { headers }))).toEqual(refused("IDEMPOTENCY_KEY_REUSED"));
    }
    expect(await footprint(fan)).toMatchObject({ reservations: 1, held: 1 });
  });

  test("the retry answers the first hold as it stands: paid, or lapsed (and then it takes no seat)", async () => {
    const fan = user("later");
    let { headers } = await admitted(fan);
    await onA.wallet.chargeBalance({ userId: fan, amount: 500_000n });
    const paidReq = { concertId: CONCERT, date: DATE, seatNumber: 12, idempotencyKey: "hold-12" };
    const lapsedReq = { concertId: CONCERT, date: DATE, seatNumber: 13, idempotencyKey: "hold-13" };
    const toPay = (await onA.reservations.holdSeat(paidReq, { headers })).reservation!;
    const toLapse = (await onA.reservations.holdSeat(lapsedReq, { headers })).reservation!;
    const paid = await onA.reservations.payReservation({ reservationId: toPay.reservationId, idempotencyKey: "pay-12" }, { headers });

    ({ headers } = await admitted(fan));
    expect((await onB.reservations.holdSeat(paidReq, { headers })).reservation).toEqual(paid.reservation);

    clock.advance(HOLD_TTL_MS);
    ({ headers } = await admitted(fan)); // the old token's TTL is past too
    const lapsed = (await onB.reservations.holdSeat(lapsedReq, { headers })).reservation!;
    expect(lapsed).toEqual({ ...toLapse, status: ReservationStatus.EXPIRED });
    expect(await footprint(fan)).toMatchObject({ reservations: 2, held: 0 });
    // The lapsed seat is free again, for anyone.
    const rival = await admitted(user("rival"));
    expect((await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 13 }, { headers: rival.headers })).reservation?.status).toBe(
      ReservationStatus.HELD,
    );
  });

  test("holding a seat you already hold returns your hold, without a key or with another; it takes no second place in the limit", async () => {
    const fan = user("twice");
    const { headers } = await admitted(fan);
    const seat = { concertId: CONCERT, date: DATE, seatNumber: 20 };
    const first = await onA.reservations.holdSeat(seat, { headers });
    expect(await onB.reservations.holdSeat(seat, { headers })).toEqual(first);
    expect(await onA.reservations.holdSeat({ ...seat, idempotencyKey: "another-key" }, { headers })).toEqual(first);
    expect(await footprint(fan)).toMatchObject({ reservations: 1, held: 1 });

    await onB.reservations.holdSeat({ ...seat, seatNumber: 21 }, { headers }); // HOLD_MAX_PER_USER=2 reached
    expect(await onA.reservations.holdSeat(seat, { headers })).toEqual(first);
    expect(await refusal(onA.reservations.holdSeat({ ...seat, seatNumber: 22 }, { headers }))).toEqual(refused("HOLD_LIMIT_REACHED"));
    // Someone else still finds the seat taken.
    const rival = await admitted(user("rival2"));
    expect(await refusal(onB.reservations.holdSeat(seat, { headers: rival.headers }))).toEqual(refused("SEAT_UNAVAILABLE"));
  });

  test("concurrent holds with one key on both instances make one hold, and all of them answer it", async () => {
    const fan = user("twins");
    const { headers } = await admitted(fan);
    const req = { concertId: CONCERT, date: DATE, seatNumber: 30, idempotencyKey: "twin-key" };
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? onA : onB).reservations.holdSeat(req, { headers })));
    expect(new Set(results.map((r) => r.reservation!.reservationId)).size).toBe(1);
    for (const r of results) expect(r).toEqual(results[0]);
    expect(await footprint(fan)).toMatchObject({ reservations: 1, held: 1 });
  });
});

describe("one key space for charges and payments", () => {
  test("a payment with a charge's key, and a charge with a payment's key, are IDEMPOTENCY_KEY_REUSED at once, never ABORTED", async () => {
    const fan = user("keys");
    const { headers } = await admitted(fan);
    await onA.wallet.chargeBalance({ userId: fan, amount: 500_000n, idempotencyKey: "k-charge" });
    const { reservation } = await onA.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 40 }, { headers });
    const id = reservation!.reservationId;
    const before = await footprint(fan);
    for (const api of [onA, onB]) {
      expect(await refusal(api.reservations.payReservation({ reservationId: id, idempotencyKey: "k-charge" }, { headers }))).toEqual(
        refused("IDEMPOTENCY_KEY_REUSED"),
      );
    }
    expect(await footprint(fan)).toEqual(before);

    const paid = await onB.reservations.payReservation({ reservationId: id, idempotencyKey: "k-pay" }, { headers });
    const after = await footprint(fan);
    for (const api of [onA, onB]) {
      for (const amount of [paid.payment!.amount, 1000n]) {
        expect(await refusal(api.wallet.chargeBalance({ userId: fan, amount, idempotencyKey: "k-pay" }))).toEqual(refused("IDEMPOTENCY_KEY_REUSED"));
      }
    }
    expect(await footprint(fan)).toEqual(after);
    // And the charge's own retry still answers the charge.
    expect((await onB.wallet.chargeBalance({ userId: fan, amount: 500_000n, idempotencyKey: "k-charge" })).balance).toBe(500_000n);
  });
});
