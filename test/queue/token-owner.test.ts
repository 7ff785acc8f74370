/**
 * A queue token opens nothing for anyone but its user: the owner check runs
 * right after the signature check, before the ticket is read or touched.
 * First the Queue's hook, then the wiring through the real server in
 * AUTH_MODE=jwt.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import { Queue } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { domainError, errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createIssuer, type TestIssuer } from "../auth/jwt-fixtures";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { queueSettings, recordingStore, T0 } from "./support";

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );

describe("the Queue's authorize hook", () => {
  const IDLE = 60_000;

  async function setUp() {
    const clock = new ManualClock(T0);
    const { store, calls } = recordingStore(createMemoryQueueStore());
    const queue = new Queue(store, clock, queueSettings({ maxActive: 1, idleTtlMs: IDLE, activeIdleTtlMs: IDLE }), createLogger("silent"));
    const active = await queue.issueToken("alice");
    await queue.tick();
    const waiting = await queue.issueToken("bob");
    calls.length = 0;
    const seen: string[] = [];
    const refuse = (userId: string) => {
      seen.push(userId);
      throw domainError(Code.PermissionDenied, "QUEUE_TOKEN_NOT_YOURS", "not yours");
    };
    const allow = (userId: string) => void seen.push(userId);
    return { clock, calls, queue, active, waiting, seen, refuse, allow };
  }

  test("gets the token's user; a refusal propagates before any store call", async () => {
    const { calls, queue, active, waiting, seen, refuse } = await setUp();
    expect((await refusal(queue.getStatus(waiting.token, refuse)))?.code).toBe(Code.PermissionDenied);
    expect((await refusal(queue.admitCaller(active.token, refuse)))?.code).toBe(Code.PermissionDenied);
    const stream = queue.watch(waiting.token, new AbortController().signal, refuse);
    expect((await refusal(stream.next()))?.code).toBe(Code.PermissionDenied);
    expect(seen).toEqual(["bob", "alice", "bob"]);
    expect(calls).toEqual([]);
    expect(queue.openStreams).toBe(0);
  });

  test("is not asked about tokens that fail before it: missing, or not signed by us", async () => {
    const { queue, seen, refuse } = await setUp();
    expect(errorReason(await refusal(queue.admitCaller(null, refuse)))).toBe("QUEUE_TOKEN_MISSING");
    expect(errorReason(await refusal(queue.admitCaller("q1.Zm9v.1.AAAAAAAAAAAAAAAAAAAAAA", refuse)))).toBe("QUEUE_TOKEN_INVALID");
    expect((await refusal(queue.getStatus("q1.Zm9v.1.AAAAAAAAAAAAAAAAAAAAAA", refuse)))?.code).toBe(Code.NotFound);
    expect(seen).toEqual([]);
  });

  test("an allowed caller proceeds as without the hook", async () => {
    const { queue, active, waiting, seen, allow } = await setUp();
    expect(await queue.getStatus(waiting.token, allow)).toMatchObject({ state: "WAITING", position: 0 });
    expect(await queue.admitCaller(active.token, allow)).toMatchObject({ state: "ACTIVE" });
    const ac = new AbortController();
    const stream = queue.watch(waiting.token, ac.signal, allow);
    expect((await stream.next()).value).toMatchObject({ state: "WAITING" });
    ac.abort();
    await stream.return(undefined);
    expect(seen).toEqual(["bob", "alice", "bob"]);
  });

  test("refused calls keep nobody: neither the waiting ticket in line nor the active one's slot", async () => {
    const { clock, queue, active, waiting, refuse } = await setUp();
    clock.advance(IDLE - 1000);
    await refusal(queue.getStatus(waiting.token, refuse));
    await refusal(queue.admitCaller(active.token, refuse));
    clock.advance(1000);
    expect(await queue.tick()).toMatchObject({ expiredIdleActive: 1, droppedIdle: 1, admitted: 0 });
  });
});

describe("through the server, AUTH_MODE=jwt", () => {
  const clock = new ManualClock(T0);
  let idp: TestIssuer;
  let db: TestDatabase;
  let s: TestServer;

  beforeAll(async () => {
    idp = await createIssuer();
    await idp.publish();
    db = await createTestDatabase();
    s = await startTestServer(
      {
        DATABASE_URL: db.url,
        SEED_DEMO_CATALOG: "true",
        AUTH_MODE: "jwt",
        AUTH_JWKS: idp.jwksPath,
        AUTH_ISSUER: idp.issuer,
        AUTH_AUDIENCE: idp.audience,
        QUEUE_MAX_ACTIVE: "1",
        QUEUE_IDLE_TTL: "2m",
        QUEUE_ACTIVE_IDLE_TTL: "10m",
      },
      { clock, startQueue: false },
    );
  });
  afterAll(async () => {
    await s?.stop();
    await db?.drop();
    await idp?.close();
  });

  const bearer = async (sub: string, scope?: string) => ({ authorization: `Bearer ${await idp.sign({ sub, scope })}` });
  const queueClient = () => createClient(QueueService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
  const streamClient = () => createClient(QueueService, createGrpcTransport({ baseUrl: s.baseUrl }));

  test("IssueToken is for the caller: empty user_id means the caller; another user needs the service scope", async () => {
    const q = queueClient();
    const { ticket } = await q.issueToken({}, { headers: await bearer(`me-${randomBytes(3).toString("hex")}`) });
    expect(ticket?.userId).toMatch(/^me-/);
    const err = await refusal(q.issueToken({ userId: "someone-else" }, { headers: await bearer("mallory") }));
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("USER_MISMATCH");
    const forOther = await q.issueToken({ userId: "served-user" }, { headers: await bearer("box-office-svc", "boxoffice:service") });
    expect(forOther.ticket?.userId).toBe("served-user");
    await s.deps.queue.expireAfterPayment(ticket!.token);
    await s.deps.queue.expireAfterPayment(forOther.ticket!.token);
  });

  test("GetQueueStatus, WatchQueueStatus and the gate refuse another user's token before touching it", async () => {
    const q = queueClient();
    const alice = await bearer("alice");
    const bob = await bearer("bob");
    const holder = (await q.issueToken({}, { headers: alice })).ticket!;
    await s.deps.queue.tick(); // alice is ACTIVE and fills the room
    const carol = await bearer("carol");
    const waiting = (await q.issueToken({}, { headers: carol })).ticket!;
    expect(waiting).toMatchObject({ status: QueueStatus.WAITING, userId: "carol" });

    const notYours = (err: ConnectError | undefined) => {
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(errorReason(err)).toBe("QUEUE_TOKEN_NOT_YOURS");
    };
    clock.advance(100_000);
    notYours(await refusal(q.getQueueStatus({ token: waiting.token }, { headers: bob })));
    const stream = streamClient().watchQueueStatus({ token: waiting.token }, { headers: bob })[Symbol.asyncIterator]();
    notYours(await refusal(stream.next()));
    const concerts = createClient(ConcertService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
    notYours(await refusal(concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }, { headers: { ...bob, "x-queue-token": holder.token } })));

    // The owner and a trusted service pass.
    await expect(
      concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }, { headers: { ...alice, "x-queue-token": holder.token } }),
    ).resolves.toBeDefined();
    const svc = await bearer("box-office-svc", "boxoffice:service");
    expect((await q.getQueueStatus({ token: holder.token }, { headers: svc })).ticket?.status).toBe(QueueStatus.ACTIVE);

    // bob's polls did not keep carol in line: 2 minutes after her own last poll, she is gone.
    clock.advance(20_000);
    expect(await s.deps.queue.tick()).toMatchObject({ droppedIdle: 1, admitted: 0 });
    expect((await q.getQueueStatus({ token: waiting.token }, { headers: carol })).ticket?.status).toBe(QueueStatus.EXPIRED);
    await s.deps.queue.expireAfterPayment(holder.token);
  });
});
