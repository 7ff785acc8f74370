/**
 * REDIS_COMMAND_TIMEOUT fails a command whose reply has not come, not one
 * whose reply waited in the socket while the event loop was busy: an on-sale
 * burst keeps the loop busy for longer than the timeout, and Redis is fine.
 */
import { createLogger } from "../../src/platform/logger";
import { closeRedis, connectRedis, type Redis } from "../../src/platform/redis";
import { spawnRedis, type RedisProcess } from "../queue/redis-processes";

const TIMEOUT_MS = 200;
let redis: RedisProcess;
let client: Redis;
beforeAll(async () => {
  redis = await spawnRedis();
  [client] = await connectRedis([redis.url], createLogger("silent"), { commandTimeoutMs: TIMEOUT_MS });
});
afterAll(async () => {
  redis?.thaw();
  await closeRedis(client ? [client] : []);
  await redis?.remove();
});

function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // the event loop does nothing else meanwhile, as under a burst of calls
  }
}

test("a reply that came while the event loop was busy past the timeout is a reply, not a timeout", async () => {
  const pings = Array.from({ length: 50 }, () => client.ping());
  busyFor(TIMEOUT_MS * 3); // the replies arrive now, and wait unread in the socket
  await expect(Promise.all(pings)).resolves.toEqual(Array(50).fill("PONG"));
});

test("a command that gets no reply fails after the timeout, and the client works again once Redis answers", async () => {
  redis.freeze();
  const started = Date.now();
  await expect(client.ping()).rejects.toThrow("Command timed out");
  const took = Date.now() - started;
  expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
  expect(took).toBeLessThan(TIMEOUT_MS + 1000);
  redis.thaw();
  await expect(client.ping()).resolves.toBe("PONG");
});
