/**
 * A hung Redis (the process stopped, its connections open) must not hang
 * calls: every command has a timeout (REDIS_COMMAND_TIMEOUT), after which
 * the queue answers UNAVAILABLE, and it serves again once Redis does.
 */
import { randomBytes } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { Queue } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { spawnRedis, type RedisProcess } from "../queue/redis-processes";
import { queueSettings, T0 } from "../queue/support";

let redis: RedisProcess;
let client: Redis;
beforeAll(async () => {
  redis = await spawnRedis();
  [client] = await connectRedis([redis.url], createLogger("silent"), { commandTimeoutMs: 300 });
});
afterAll(async () => {
  redis?.thaw();
  await closeRedis(client ? [client] : []);
  await redis?.remove();
});

test("a hung Redis: calls fail UNAVAILABLE after the command timeout, and work again when it answers", async () => {
  const queue = new Queue(
    createRedisQueueStore(client, `hung:${randomBytes(4).toString("hex")}:`),
    new ManualClock(T0),
    queueSettings(),
    createLogger("silent"),
  );
  const ticket = await queue.issueToken("before");

  redis.freeze();
  for (const call of [() => queue.issueToken("during"), () => queue.getStatus(ticket.token), () => queue.admitCaller(ticket.token)]) {
    const started = Date.now();
    const err = await call().then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(errorReason(err)).toBe("QUEUE_UNAVAILABLE");
    expect(Date.now() - started).toBeLessThan(1500);
  }
  expect(await queue.tick()).toBeUndefined(); // the round fails, logged, and the loop goes on

  redis.thaw();
  // A timed-out command may still run once Redis wakes (here the round admits "before"): each is one atomic script.
  expect(await queue.getStatus(ticket.token)).toMatchObject({ userId: "before", state: "ACTIVE" });
  expect(await queue.issueToken("after")).toMatchObject({ state: "WAITING" });
});
