/** The variables of the queue's Redis and token secrets. */
import { ConfigError, loadConfig, type Env } from "../../src/config";

const refused = (env: Env): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
};

test("defaults: no configured secrets, no Sentinel, a 1 s command timeout, restore up to 6 h", () => {
  const c = loadConfig({});
  expect(c.queue.tokenSecrets).toEqual([]);
  expect(c.queue.restoreMaxAgeMs).toBe(6 * 3_600_000);
  expect(c.redisSentinel).toBeUndefined();
  expect(c.redisCommandTimeoutMs).toBe(1000);
});

test("QUEUE_TOKEN_SECRETS: plain text of 32+ characters or base64: of 32+ bytes, in order", () => {
  const raw = Buffer.alloc(32, 0xab);
  const c = loadConfig({ QUEUE_TOKEN_SECRETS: ` ${"n".repeat(44)} , base64:${raw.toString("base64")} ` });
  expect(c.queue.tokenSecrets).toEqual([Buffer.from("n".repeat(44)), raw]);
  expect(refused({ QUEUE_TOKEN_SECRETS: "too-short" })).toMatch(/^\s+QUEUE_TOKEN_SECRETS: secret 1 is shorter than 32 bytes/m);
  expect(refused({ QUEUE_TOKEN_SECRETS: `${"x".repeat(32)},base64:${Buffer.alloc(16).toString("base64")}` })).toMatch(/secret 2 is shorter/);
  expect(refused({ QUEUE_TOKEN_SECRETS: `base64:${"*".repeat(48)}` })).toMatch(/secret 1 is not base64/);
});

test("REDIS_SENTINELS with REDIS_SENTINEL_NAME (each requires the other); REDIS_COMMAND_TIMEOUT", () => {
  const c = loadConfig({
    REDIS_SENTINELS: "10.0.0.1:26379, sentinel-b:26380",
    REDIS_SENTINEL_NAME: "queue",
    REDIS_SENTINEL_PASSWORD: "pw",
    REDIS_COMMAND_TIMEOUT: "250ms",
  });
  expect(c.redisSentinel).toEqual({
    sentinels: [
      { host: "10.0.0.1", port: 26379 },
      { host: "sentinel-b", port: 26380 },
    ],
    name: "queue",
    password: "pw",
  });
  expect(c.redisCommandTimeoutMs).toBe(250);
  expect(refused({ REDIS_SENTINELS: "s1:26379" })).toMatch(/^\s+REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/m);
  expect(refused({ REDIS_SENTINEL_NAME: "queue" })).toMatch(/^\s+REDIS_SENTINELS: required with REDIS_SENTINEL_NAME/m);
  expect(refused({ REDIS_SENTINELS: "s1", REDIS_SENTINEL_NAME: "queue" })).toMatch(/^\s+REDIS_SENTINELS: "s1" is not host:port/m);
  expect(refused({ REDIS_COMMAND_TIMEOUT: "0" })).toMatch(/^\s+REDIS_COMMAND_TIMEOUT: /m);
  expect(refused({ QUEUE_RESTORE_MAX_AGE: "10s" })).toMatch(/^\s+QUEUE_RESTORE_MAX_AGE: /m);
});
