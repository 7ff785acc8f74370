/**
 * The queue on a replicated Redis behind Sentinel (REDIS_SENTINELS): the
 * master is killed, the sentinel promotes the replica, and the instances'
 * clients follow it. Tokens issued before the failover keep their state and
 * place (the data and the secret were replicated), and new ones work.
 * A master with AOF, one replica, one sentinel (quorum 1), all on loopback.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { Queue, type QueueSettings, type Ticket } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { createLogger } from "../../src/platform/logger";
import { closeRedis, connectRedisSentinel } from "../../src/platform/redis";
import { eventually, spawnRedis, type RedisProcess } from "../queue/redis-processes";

jest.setTimeout(30_000);

const NAME = "queue";
const settings: QueueSettings = {
  maxActive: 1,
  admitPerSecond: 1000,
  activeTtlMs: 600_000,
  activeIdleTtlMs: 600_000,
  idleTtlMs: 600_000,
  tickMs: 250,
  streamPositionIntervalMs: 0,
  maxStreamsPerToken: 4,
};
const log = createLogger("silent");
const processes: RedisProcess[] = [];
const clients: Redis[] = [];

afterAll(async () => {
  await closeRedis(clients);
  await Promise.all(processes.map((p) => p.remove()));
});

async function role(port: number): Promise<string | undefined> {
  const c = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await c.connect();
    return ((await c.role()) as unknown[])[0] as string;
  } finally {
    c.disconnect();
  }
}

test("tokens survive a Sentinel failover of the queue's Redis", async () => {
  const master = await spawnRedis({ args: ["--appendonly", "yes", "--appendfsync", "everysec"] });
  processes.push(master);
  const replica = await spawnRedis({ args: ["--appendonly", "yes", "--replicaof", "127.0.0.1", String(master.port)] });
  processes.push(replica);
  const sentinel = await spawnRedis({
    sentinel: [
      `sentinel monitor ${NAME} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${NAME} 1000`,
      `sentinel failover-timeout ${NAME} 10000`,
    ],
  });
  processes.push(sentinel);
  const sentinelClient = new Redis({ port: sentinel.port, host: "127.0.0.1" });
  const direct = new Redis(master.url);
  const onReplica = new Redis(replica.url);
  clients.push(sentinelClient, direct, onReplica);
  await eventually("the replica is in sync", 10_000, async () => (/master_link_status:up/.test(await onReplica.info("replication")) ? true : undefined));
  onReplica.disconnect();
  // The sentinel finds the replica through the master before it can promote it.
  await eventually("the sentinel knows the replica", 10_000, async () => {
    const replicas = (await sentinelClient.call("SENTINEL", "REPLICAS", NAME)) as string[][];
    return replicas.some((r) => r[r.indexOf("port") + 1] === String(replica.port) && r[r.indexOf("flags") + 1] === "slave") ? true : undefined;
  });

  const config = { sentinels: [{ host: "127.0.0.1", port: sentinel.port }], name: NAME };
  const prefix = `sentinel:${randomBytes(4).toString("hex")}:`;
  const clock = new ManualClock(Date.parse("2026-12-01T10:00:00Z"));
  const instances: Queue[] = [];
  for (let i = 0; i < 2; i++) {
    const client = await connectRedisSentinel(config, log);
    clients.push(client);
    instances.push(new Queue(createRedisQueueStore(client, prefix), clock, settings, log));
  }
  const [a, b] = instances;
  const tickets: Ticket[] = [];
  for (let i = 0; i < 4; i++) tickets.push(await (i % 2 ? b : a).issueToken(`sentinel-buyer-${i}`));
  await a.tick();
  const before = await Promise.all(tickets.map((t) => b.getStatus(t.token)));
  expect(before.map((t) => [t.state, t.position])).toEqual([
    ["ACTIVE", 0],
    ["WAITING", 0],
    ["WAITING", 1],
    ["WAITING", 2],
  ]);
  // Everything written so far is on the replica: a write after it, acknowledged by the replica.
  await direct.set(`${prefix}marker`, "1");
  expect(await direct.call("WAIT", "1", "5000")).toBe(1);
  direct.disconnect();

  const killedAt = Date.now();
  await master.kill();
  await eventually("the sentinel promoted the replica", 20_000, async () => {
    const [, port] = (await sentinelClient.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)) as string[];
    return port === String(replica.port) && (await role(replica.port)) === "master" ? true : undefined;
  });

  // Both instances follow the new master; what they answered before, they answer now.
  const after = await eventually("the instances reach the new master", 15_000, async () =>
    Promise.all(before.map((t, i) => (i % 2 ? a : b).getStatus(t.token))),
  );
  expect(after.map((t) => [t.state, t.position, t.expiresAt?.getTime()])).toEqual(before.map((t) => [t.state, t.position, t.expiresAt?.getTime()]));
  expect(after.map((t) => t.token)).toEqual(before.map((t) => t.token));
  expect((await a.admitCaller(before[0].token)).state).toBe("ACTIVE");
  const late = await b.issueToken("after-failover");
  expect(await a.getStatus(late.token)).toMatchObject({ state: "WAITING", position: 3 });
  expect(Date.now() - killedAt).toBeLessThan(25_000);
});
