/**
 * Which token a buyer holds, through the Queue: QUEUE_TOKEN_SECRETS rotation
 * (the first signs, all verify), tokens signed again on admission, and q1
 * tokens of the previous release. Several Queue instances on one Redis, as in
 * a rolling deploy.
 */
import { randomBytes } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import { signToken, verifyToken } from "../../src/modules/queue/queue-token";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { Queue } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { errorReason } from "../../src/platform/errors";
import { createLogger, type Logger } from "../../src/platform/logger";
import { testRedisUrl } from "../harness";
import { queueSettings, T0 } from "./support";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(testRedisUrl());
});
afterAll(() => redis.quit());

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );

function setUp() {
  const prefix = `secrets:${randomBytes(4).toString("hex")}:`;
  const store = createRedisQueueStore(redis, prefix);
  const clock = new ManualClock(T0);
  const instance = (tokenSecrets?: Buffer[], log: Logger = createLogger("silent")) =>
    new Queue(store, clock, queueSettings({ maxActive: 1, tokenSecrets }), log);
  return { prefix, store, clock, instance };
}

test("rotation: prepend a new secret, then drop the old one; status answers hand out tokens under the first", async () => {
  const { prefix, instance } = setUp();
  const [old, fresh] = [Buffer.from("o".repeat(32)), Buffer.from("n".repeat(40))];
  const before = instance([old]);
  await before.issueToken("holder");
  await before.tick(); // holder takes the only slot
  const waiting = await before.issueToken("alice");
  expect(verifyToken(old, waiting.token)).toBeDefined();

  // Rolled out with the new secret first: the old token still works, and the answer carries it under the new one.
  const during = instance([fresh, old]);
  const status = await during.getStatus(waiting.token);
  expect(status).toMatchObject({ state: "WAITING", position: 0 });
  expect(status.token).not.toBe(waiting.token);
  expect(verifyToken(fresh, status.token)).toEqual(verifyToken(old, waiting.token));
  const bob = await during.issueToken("bob");
  expect(verifyToken(fresh, bob.token)).toBeDefined();
  expect(verifyToken(old, bob.token)).toBeUndefined();
  // An instance still on the old list verifies neither new token: deploy the new list everywhere before dropping the old.
  expect((await refusal(before.getStatus(bob.token)))?.message).toMatch(/unknown queue token/);

  // The old secret dropped: its tokens are refused, the ones handed out since work.
  const after = instance([fresh]);
  expect(errorReason(await refusal(after.getStatus(waiting.token)))).toBe("QUEUE_TOKEN_INVALID");
  expect(errorReason(await refusal(after.admitCaller(waiting.token)))).toBe("QUEUE_TOKEN_INVALID");
  expect(await after.getStatus(status.token)).toMatchObject({ state: "WAITING", userId: "alice", token: status.token });
  expect(await after.getStatus(bob.token)).toMatchObject({ state: "WAITING", position: 1 });

  // Configured secrets are never written to Redis.
  expect(await redis.exists(`${prefix}secret`, `${prefix}secrets`)).toBe(0);
});

test("on admission the token is signed again with the end of the booking window; the first one keeps working", async () => {
  const { clock, instance } = setUp();
  const secret = randomBytes(32);
  const queue = instance([secret]);
  const issued = await queue.issueToken("carol");
  expect(issued.token.split(".")[4]).toMatch(/^w/);
  clock.advance(1000);
  await queue.tick();
  const active = await queue.getStatus(issued.token);
  expect(active.state).toBe("ACTIVE");
  expect(active.token).not.toBe(issued.token);
  expect(verifyToken(secret, active.token)?.origin).toEqual({ generation: expect.any(Number), state: "ACTIVE", activeUntil: active.expiresAt!.getTime() });
  // The same ACTIVE token from IssueToken, a poll with either token, and the stream.
  expect((await queue.issueToken("carol")).token).toBe(active.token);
  expect((await queue.getStatus(active.token)).token).toBe(active.token);
  const stream = queue.watch(issued.token, new AbortController().signal);
  expect((await stream.next()).value).toMatchObject({ state: "ACTIVE", token: active.token });
  await stream.return(undefined);
  // The gate takes both and passes on the token it was given.
  expect((await queue.admitCaller(issued.token)).token).toBe(issued.token);
  expect((await queue.admitCaller(active.token)).token).toBe(active.token);
  // Paid with either: both are spent.
  await queue.expireAfterPayment(active.token);
  expect(errorReason(await refusal(queue.admitCaller(issued.token)))).toBe("QUEUE_TOKEN_EXPIRED");
});

test("a q1 token of the previous release keeps working as before", async () => {
  const { store, instance } = setUp();
  const secret = randomBytes(32);
  const queue = instance([secret]);
  const ticket = await store.issue("dave", T0, 600_000);
  const q1 = signToken(secret, { userId: "dave", seq: ticket.seq });
  expect(q1).toMatch(/^q1\./);
  expect(await queue.getStatus(q1)).toMatchObject({ state: "WAITING", token: q1 });
  await queue.tick();
  expect(await queue.admitCaller(q1)).toMatchObject({ state: "ACTIVE", userId: "dave" });
  await queue.expireAfterPayment(q1);
  expect(errorReason(await refusal(queue.admitCaller(q1)))).toBe("QUEUE_TOKEN_EXPIRED");
});

test("without QUEUE_TOKEN_SECRETS on Redis the server warns at start; configured, or on the embedded default, it does not", () => {
  const { instance } = setUp();
  const log = createLogger("silent");
  const warn = jest.spyOn(log, "warn");
  instance(undefined, log);
  expect(warn).toHaveBeenCalledTimes(1);
  expect(String(warn.mock.calls[0][0])).toMatch(/QUEUE_TOKEN_SECRETS is not set/);
  warn.mockClear();
  instance([randomBytes(32)], log);
  new Queue(createMemoryQueueStore(), new ManualClock(T0), queueSettings(), log);
  expect(warn).not.toHaveBeenCalled();
});
