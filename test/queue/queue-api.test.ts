/**
 * The waiting room through the real server: tokens, status, the live stream,
 * and the gate in front of the booking RPCs. Admission rounds are driven by
 * hand (deps.queue.tick()) and time by a manual clock, so nothing sleeps.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus, QueueTicketSchema } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { ManualClock } from "../../src/platform/clock";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";

const clock = new ManualClock(Date.parse("2026-12-01T10:00:00Z"));
let db: TestDatabase;
let s: TestServer;
let queue: Client<typeof QueueService>;
let streams: Client<typeof QueueService>;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer(
    {
      DATABASE_URL: db.url,
      REDIS_URLS: testRedisUrl(),
      QUEUE_REDIS_PREFIX: `api:${randomBytes(4).toString("hex")}:`,
      SEED_DEMO_CATALOG: "true",
      QUEUE_MAX_ACTIVE: "1",
      QUEUE_ADMIT_PER_SECOND: "100",
      QUEUE_IDLE_TTL: "2m",
      QUEUE_ACTIVE_TTL: "10m",
      // Longer than the 200 s the idle-TTL test below holds its slot without a gated call.
      QUEUE_ACTIVE_IDLE_TTL: "5m",
      QUEUE_MAX_STREAMS_PER_TOKEN: "3",
      // Every position change goes out at once here; the interval has its own test.
      QUEUE_STREAM_POSITION_INTERVAL: "0ms",
    },
    { clock, startQueue: false },
  );
  queue = createClient(QueueService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
  streams = createClient(QueueService, createGrpcTransport({ baseUrl: s.baseUrl }));
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

/** Frees the single active slot: whoever holds it leaves as if they had paid. */
async function freeSlot(token: string) {
  await s.deps.queue.expireAfterPayment(token);
}

const reasonOf = (e: unknown) => ConnectError.from(e).findDetails(ErrorInfoSchema)[0]?.reason;

test("IssueToken: one token per live user, signed and bound to the user", async () => {
  const [a, b] = await Promise.all([queue.issueToken({ userId: "tok-alice" }), queue.issueToken({ userId: "tok-alice" })]);
  expect(a.ticket?.token).toBe(b.ticket?.token);
  expect(a.ticket?.userId).toBe("tok-alice");
  expect(a.ticket?.token).not.toContain("tok-alice");
  const other = await queue.issueToken({ userId: "tok-bob" });
  expect(other.ticket?.token).not.toBe(a.ticket?.token);

  // A token for another user cannot be made by editing one: the signature no longer matches.
  const parts = a.ticket!.token.split(".");
  parts[1] = Buffer.from("tok-bob").toString("base64url");
  const forged = parts.join(".");
  await expect(queue.getQueueStatus({ token: forged })).rejects.toMatchObject({ code: Code.NotFound });
  await expect(queue.getQueueStatus({ token: "q1.Zm9v.1.AAAAAAAAAAAAAAAAAAAAAA" })).rejects.toMatchObject({ code: Code.NotFound });
  await freeSlot(a.ticket!.token);
  await freeSlot(other.ticket!.token);
});

test("status: WAITING with exact position and an estimate, then ACTIVE with expiry", async () => {
  const first = await queue.issueToken({ userId: "st-1" });
  await s.deps.queue.tick(); // st-1 takes the only slot
  const waiting = await queue.issueToken({ userId: "st-2" });
  const behind = await queue.issueToken({ userId: "st-3" });
  expect(waiting.ticket).toMatchObject({ status: QueueStatus.WAITING, position: 0n });
  expect(behind.ticket).toMatchObject({ status: QueueStatus.WAITING, position: 1n });
  expect(Number(behind.ticket!.estimatedWait!.seconds)).toBeGreaterThan(0);

  const active = await queue.getQueueStatus({ token: first.ticket!.token });
  expect(active.ticket?.status).toBe(QueueStatus.ACTIVE);
  expect(active.ticket?.expiresAt && Number(active.ticket.expiresAt.seconds) * 1000).toBe(clock.now().getTime() + 600_000);

  await freeSlot(first.ticket!.token);
  await s.deps.queue.tick();
  expect((await queue.getQueueStatus({ token: waiting.ticket!.token })).ticket?.status).toBe(QueueStatus.ACTIVE);
  expect((await queue.getQueueStatus({ token: behind.ticket!.token })).ticket).toMatchObject({ status: QueueStatus.WAITING, position: 0n });
  const gone = await queue.getQueueStatus({ token: first.ticket!.token });
  expect(gone.ticket?.status).toBe(QueueStatus.EXPIRED);
  await freeSlot(waiting.ticket!.token);
  await freeSlot(behind.ticket!.token);
});

test("WatchQueueStatus sends the ticket at once, then position changes and activation within one round, and ends on expiry", async () => {
  const holder = await queue.issueToken({ userId: "w-holder" });
  await s.deps.queue.tick();
  const a = await queue.issueToken({ userId: "w-a" });
  const b = await queue.issueToken({ userId: "w-b" });
  const ac = new AbortController();
  const seenA = streams.watchQueueStatus({ token: a.ticket!.token }, { signal: ac.signal })[Symbol.asyncIterator]();
  const seenB = streams.watchQueueStatus({ token: b.ticket!.token }, { signal: ac.signal })[Symbol.asyncIterator]();
  expect((await seenA.next()).value.ticket).toMatchObject({ status: QueueStatus.WAITING, position: 0n });
  expect((await seenB.next()).value.ticket).toMatchObject({ status: QueueStatus.WAITING, position: 1n });

  await freeSlot(holder.ticket!.token);
  await s.deps.queue.tick(); // one round: a is admitted, b moves up
  const within = <T>(p: Promise<T>) =>
    Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no update within 1 s of the round")), 1000))]);
  expect((await within(seenA.next())).value.ticket).toMatchObject({ status: QueueStatus.ACTIVE });
  expect((await within(seenB.next())).value.ticket).toMatchObject({ status: QueueStatus.WAITING, position: 0n });

  await freeSlot(a.ticket!.token);
  await s.deps.queue.tick();
  expect((await within(seenA.next())).value.ticket?.status).toBe(QueueStatus.EXPIRED);
  expect((await within(seenA.next())).done).toBe(true);
  expect((await within(seenB.next())).value.ticket?.status).toBe(QueueStatus.ACTIVE);
  ac.abort();
  await freeSlot(b.ticket!.token);
});

test("an open stream keeps a waiting token in line; an unwatched one is dropped after the idle TTL", async () => {
  const holder = await queue.issueToken({ userId: "k-holder" });
  await s.deps.queue.tick();
  const watched = await queue.issueToken({ userId: "k-watched" });
  const ignored = await queue.issueToken({ userId: "k-ignored" });
  const ac = new AbortController();
  const it = streams.watchQueueStatus({ token: watched.ticket!.token }, { signal: ac.signal })[Symbol.asyncIterator]();
  await it.next();
  for (let i = 0; i < 5; i++) {
    clock.advance(40_000); // 200 s in all, past the 120 s idle TTL
    // Keep the slot taken so nobody is admitted meanwhile.
    await queue.getQueueStatus({ token: holder.ticket!.token });
    await s.deps.queue.tick();
  }
  expect((await queue.getQueueStatus({ token: watched.ticket!.token })).ticket).toMatchObject({ status: QueueStatus.WAITING, position: 0n });
  expect((await queue.getQueueStatus({ token: ignored.ticket!.token })).ticket?.status).toBe(QueueStatus.EXPIRED);
  ac.abort();
  await freeSlot(holder.ticket!.token);
  await freeSlot(watched.ticket!.token);
});

test("WatchQueueStatus: at most QUEUE_MAX_STREAMS_PER_TOKEN streams per token, refused before the first message; a closed one frees its place", async () => {
  const holder = await queue.issueToken({ userId: "sl-holder" });
  await s.deps.queue.tick();
  const token = (await queue.issueToken({ userId: "sl-user" })).ticket!.token;
  const other = (await queue.issueToken({ userId: "sl-other" })).ticket!.token;
  const before = s.deps.queue.openStreams;
  const opened: AbortController[] = [];
  const open = (t: string) => {
    const ac = new AbortController();
    opened.push(ac);
    const first = streams.watchQueueStatus({ token: t }, { signal: ac.signal })[Symbol.asyncIterator]().next();
    return {
      ac,
      first: first.then(
        (r) => r.value.ticket,
        (e) => ConnectError.from(e),
      ),
    };
  };
  const isExceeded = (r: unknown) => {
    if (!(r instanceof ConnectError)) return false;
    const info = r.findDetails(ErrorInfoSchema)[0];
    return r.code === Code.ResourceExhausted && info?.reason === "QUEUE_STREAMS_EXCEEDED" && info.metadata.limit === "3";
  };

  // Five at once: exactly three get their ticket, two are refused with nothing sent.
  const five = Array.from({ length: 5 }, () => open(token));
  const firsts = await Promise.all(five.map((x) => x.first));
  expect(firsts.filter((f) => !(f instanceof ConnectError) && f?.status === QueueStatus.WAITING)).toHaveLength(3);
  expect(firsts.filter(isExceeded)).toHaveLength(2);
  expect(s.deps.queue.openStreams).toBe(before + 3);
  expect(isExceeded(await open(token).first)).toBe(true);

  // Another token has its own limit.
  expect(await open(other).first).toMatchObject({ status: QueueStatus.WAITING, userId: "sl-other" });

  // Closing one frees its place once the server sees the stream end.
  five[firsts.findIndex((f) => !(f instanceof ConnectError))].ac.abort();
  for (const deadline = Date.now() + 5000; s.deps.queue.openStreams !== before + 3; ) {
    if (Date.now() > deadline) throw new Error(`the closed stream still counts: ${s.deps.queue.openStreams - before} open`);
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(await open(token).first).toMatchObject({ status: QueueStatus.WAITING, userId: "sl-user" });

  for (const ac of opened) ac.abort();
  await freeSlot(holder.ticket!.token);
  await freeSlot(token);
  await freeSlot(other);
});

test("an ACTIVE token without a gated call for QUEUE_ACTIVE_IDLE_TTL gives its slot to the next in line", async () => {
  const concerts = createClient(ConcertService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
  const gated = (token: string) => concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }, { headers: { "x-queue-token": token } });
  const a = (await queue.issueToken({ userId: "ai-a" })).ticket!.token;
  await s.deps.queue.tick();
  const b = (await queue.issueToken({ userId: "ai-b" })).ticket!.token;
  // Every 100 s b polls to stay in line (2 min idle TTL); a makes one gated call, at 200 s.
  const step = async (alsoNow?: () => Promise<unknown>) => {
    clock.advance(100_000);
    await queue.getQueueStatus({ token: b });
    await alsoNow?.();
    return s.deps.queue.tick();
  };
  await step();
  await step(() => gated(a));
  expect(await step()).toMatchObject({ admitted: 0, expiredIdleActive: 0 }); // 300 s: 5 min since admission, not since the call
  await step();
  expect(await step()).toMatchObject({ admitted: 1, expiredIdleActive: 1 }); // 500 s: 5 min since the call
  expect(reasonOf(await gated(a).catch((e) => e))).toBe("QUEUE_TOKEN_EXPIRED");
  await expect(gated(b)).resolves.toBeDefined();
  await freeSlot(b);
});

describe("the gate", () => {
  const concertId = "iu-golden-hour-2027";
  const gated: [string, (c: { concerts: Client<typeof ConcertService>; res: Client<typeof ReservationService> }, h: Headers) => Promise<unknown>][] = [
    ["ListAvailableDates", (c, headers) => c.concerts.listAvailableDates({ concertId }, { headers })],
    ["ListAvailableSeats", (c, headers) => c.concerts.listAvailableSeats({ concertId, date: "2027-03-06" }, { headers })],
    ["HoldSeat", (c, headers) => c.res.holdSeat({ concertId, date: "2027-03-06", seatNumber: 7 }, { headers })],
    ["CancelHold", (c, headers) => c.res.cancelHold({ reservationId: "6f1c3c1e-8a5d-4a39-9d0b-6c5e1f3f7a11" }, { headers })],
    ["PayReservation", (c, headers) => c.res.payReservation({ reservationId: "6f1c3c1e-8a5d-4a39-9d0b-6c5e1f3f7a11" }, { headers })],
  ];
  let clients: { concerts: Client<typeof ConcertService>; res: Client<typeof ReservationService> };
  let active: string;
  let waiting: string;
  let expired: string;

  beforeAll(async () => {
    const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" });
    clients = { concerts: createClient(ConcertService, transport), res: createClient(ReservationService, transport) };
    const old = await queue.issueToken({ userId: "g-old" });
    await s.deps.queue.tick();
    await freeSlot(old.ticket!.token);
    expired = old.ticket!.token;
    active = (await queue.issueToken({ userId: "g-active" })).ticket!.token;
    await s.deps.queue.tick();
    await queue.issueToken({ userId: "g-ahead" });
    waiting = (await queue.issueToken({ userId: "g-waiting" })).ticket!.token;
  });

  test.each(gated)("%s refuses missing, forged, expired and waiting tokens before any work", async (_name, call) => {
    const refusal = async (headers: Headers) => {
      const err = await call(clients, headers).then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.FailedPrecondition);
      return err!;
    };
    expect(reasonOf(await refusal(new Headers()))).toBe("QUEUE_TOKEN_MISSING");
    expect(reasonOf(await refusal(new Headers({ "x-queue-token": "not-a-token-at-all-123" })))).toBe("QUEUE_TOKEN_INVALID");
    expect(reasonOf(await refusal(new Headers({ "x-queue-token": expired })))).toBe("QUEUE_TOKEN_EXPIRED");
    const w = await refusal(new Headers({ "x-queue-token": waiting }));
    expect(reasonOf(w)).toBe("QUEUE_TOKEN_WAITING");
    expect(w.findDetails(QueueTicketSchema)[0]).toMatchObject({ status: QueueStatus.WAITING, position: 1n, userId: "g-waiting" });

    // An ACTIVE token passes the gate (whatever the RPC itself then answers).
    const passed = await call(clients, new Headers({ "x-queue-token": active })).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(passed === undefined || !reasonOf(passed)?.startsWith("QUEUE_TOKEN")).toBe(true);
  });

  test("over the Connect protocol a refusal is HTTP 400 with the reason in the body", async () => {
    const res = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListAvailableDates`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-queue-token": waiting },
      body: JSON.stringify({ concertId }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; details: { type: string }[] };
    expect(body.code).toBe("failed_precondition");
    expect(body.details.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "boxoffice.queue.v1.QueueTicket"]);
  });

  test("ungated RPCs need no token", async () => {
    await expect(clients.concerts.listConcerts({})).resolves.toBeDefined();
  });
});
