/**
 * Waiting-room benchmark: IssueToken throughput, GetQueueStatus
 * latency at 1k / 100k / 1M waiting, Redis bytes per waiting user, and server
 * memory per open WatchQueueStatus stream at 10,000 streams, each beside the
 * bare-RPC baseline (Health/Check: the same server stack doing no work)
 * measured in the same run. Real PostgreSQL, Redis and the server as its own
 * process; load from this process over @grpc/grpc-js, to 127.0.0.1 only.
 *
 *   npm run bench:queue            full (1M waiting; ~3 minutes)
 *   npm run bench:queue -- --quick (100k waiting; under a minute)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { QueueService } from "../gen/boxoffice/queue/v1/queue_service_pb";
import { Health } from "../gen/grpc/health/v1/health_pb";
import { createRedisQueueStore } from "../src/modules/queue/redis-queue-store";
import { signToken } from "../src/modules/queue/queue-token";
import type { TicketRef } from "../src/modules/queue/queue-store";
import { grpc, serverStream, unary } from "../test/e2e/grpc-js";
import { startPostgres, startRedis } from "../test/harness/services";
import { parseFlags } from "./lib/flags";
import { runLoad, table, type LoadResult } from "./lib/load";
import { startServerProcess } from "./lib/server-process";

const flags = parseFlags("npm run bench:queue -- [--quick]", { quick: { type: "boolean" } });
const QUICK = flags.values.quick === true;
const LOAD_MS = QUICK ? 2000 : 5000;
const CONCURRENCY = 64;
const LEVELS = QUICK ? [1_000, 100_000] : [1_000, 100_000, 1_000_000];
const STREAMS = QUICK ? 1_000 : 10_000;
const PREFIX = "bench:queue:";

function client(port: number, i = 0): grpc.Client {
  // A private subchannel pool gives each client its own connection.
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "bench.client": i });
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

/** A uniform sample of everything offered (reservoir sampling). */
class Reservoir<T> {
  readonly items: T[] = [];
  private seen = 0;
  constructor(private readonly size: number) {}
  offer(item: T): void {
    this.seen++;
    if (this.items.length < this.size) this.items.push(item);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.size) this.items[j] = item;
    }
  }
}

/** Adds waiting users straight through the store (the same Lua the server runs) until `target` wait. */
async function fillTo(redis: Redis, target: number, startAt: number, sample: Reservoir<TicketRef>): Promise<number> {
  const store = createRedisQueueStore(redis, PREFIX);
  let n = startAt;
  const now = Date.now();
  while (n < target) {
    const batch = Math.min(5000, target - n);
    const made = await Promise.all(Array.from({ length: batch }, (_, i) => store.issue(`fill-${n + i}`, now, 3_600_000)));
    for (const t of made) sample.offer(t);
    n += batch;
  }
  return n;
}

async function main() {
  const started = Date.now();
  console.log(`waiting-room benchmark (${QUICK ? "quick" : "full"}): services starting...`);
  const [pg, redisServer] = await Promise.all([startPostgres(), startRedis()]);
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  const server = await startServerProcess({
    DATABASE_URL: pg.adminUrl,
    REDIS_URLS: redisServer.url,
    QUEUE_REDIS_PREFIX: PREFIX,
    QUEUE_MAX_ACTIVE: "1",
    QUEUE_IDLE_TTL: "1h",
    DB_POOL_MAX: "4",
  });
  const rows: Record<string, string | number>[] = [];
  const results: Record<string, unknown> = { quick: QUICK, concurrency: CONCURRENCY, loadMs: LOAD_MS };
  const row = (name: string, r: LoadResult, baseline?: LoadResult, extra: Record<string, string | number> = {}) => {
    rows.push({
      scenario: name,
      "calls/s": r.perSecond,
      "p50 ms": r.p50,
      "p99 ms": r.p99,
      errors: r.errors,
      "÷ bare": baseline ? `${((100 * r.perSecond) / baseline.perSecond).toFixed(0)} %` : "",
      ...extra,
    });
    results[name] = r;
  };

  try {
    const c = client(server.port);
    // Warm up both paths once so JIT and connection setup are not measured.
    await runLoad({ concurrency: CONCURRENCY, durationMs: 1000, call: async () => void (await unary(c, Health.method.check, { service: "" })) });

    const bare = await runLoad({
      concurrency: CONCURRENCY,
      durationMs: LOAD_MS,
      call: async () => void (await unary(c, Health.method.check, { service: "" })),
    });
    row("bare RPC (Health/Check)", bare);

    // The server creates the signing secret on its first token; sign sample tokens with the same one.
    await unary(c, QueueService.method.issueToken, { userId: "bench-first" });
    const key = Buffer.from((await redis.get(`${PREFIX}secret`))!, "base64");
    const sample = new Reservoir<TicketRef>(2000);
    let waiting = await redis.zcard(`${PREFIX}wait`);
    let issued = 0;
    const memory: Record<string, number> = {};
    const statusP99: Record<number, number> = {};
    const issueRatio: Record<number, number> = {};
    for (const level of LEVELS) {
      const before = { users: waiting, bytes: await usedMemory(redis) };
      waiting = await fillTo(redis, level, waiting, sample);
      const after = await usedMemory(redis);
      if (waiting - before.users >= 1000) memory[level] = (after - before.bytes) / (waiting - before.users);
      const tokens = sample.items.map((t) => signToken(key, t));
      const status = await runLoad({
        concurrency: CONCURRENCY,
        durationMs: LOAD_MS,
        call: async (i) => void (await unary(c, QueueService.method.getQueueStatus, { token: tokens[i % tokens.length] })),
      });
      statusP99[level] = status.p99;
      const label = level.toLocaleString("en-US");
      row(`GetQueueStatus, ${label} waiting`, status, bare, { "Redis B/user": memory[level] ? memory[level].toFixed(0) : "" });
      const issue = await runLoad({
        concurrency: CONCURRENCY,
        durationMs: LOAD_MS,
        call: async () => void (await unary(c, QueueService.method.issueToken, { userId: `storm-${issued++}` })),
      });
      issueRatio[level] = issue.perSecond / bare.perSecond;
      row(`IssueToken (new users), ${label} waiting`, issue, bare);
      waiting = await redis.zcard(`${PREFIX}wait`);
    }
    results.tokenIssueToBare = issueRatio;
    results.redisBytesPerWaitingUser = memory;
    results.statusP99 = statusP99;
    const top = LEVELS[LEVELS.length - 1];

    // Streams: memory of the server process per open WatchQueueStatus stream.
    const streamTokens = sample.items.slice(0, STREAMS).map((t) => signToken(key, t));
    while (streamTokens.length < STREAMS) {
      const t = await unary(c, QueueService.method.issueToken, { userId: `watch-${streamTokens.length}` });
      streamTokens.push(t.message.ticket!.token);
    }
    const m0 = await server.metrics();
    const clients = Array.from({ length: 10 }, (_, i) => client(server.port, i + 1));
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    const t0 = performance.now();
    await Promise.all(
      streamTokens.map(
        (token, i) =>
          new Promise<void>((resolve, reject) => {
            const call = serverStream(clients[i % clients.length], QueueService.method.watchQueueStatus, { token });
            calls.push(call);
            call.once("data", () => resolve());
            call.once("error", reject);
          }),
      ),
    );
    const openMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    const m1 = await server.metrics();
    const rss = (m1.get("process_resident_memory_bytes")! - m0.get("process_resident_memory_bytes")!) / STREAMS;
    const heap = (m1.get("nodejs_heap_size_used_bytes")! - m0.get("nodejs_heap_size_used_bytes")!) / STREAMS;
    const open = m1.get("queue_open_streams") ?? NaN;
    results.streams = { count: STREAMS, openReported: open, openMs, rssBytesPerStream: rss, heapBytesPerStream: heap };
    for (const call of calls) {
      call.on("error", () => undefined);
      call.cancel();
    }
    for (const x of clients) x.close();
    c.close();

    console.log(`\n${table(rows)}`);
    console.log(
      `\nstreams: ${STREAMS.toLocaleString("en-US")} open (server reports ${open}), opened in ${(openMs / 1000).toFixed(1)} s; ` +
        `server RSS +${(rss / 1024).toFixed(1)} KiB/stream, JS heap +${(heap / 1024).toFixed(1)} KiB/stream`,
    );
    console.log(
      `ratios: IssueToken ÷ bare at ${top.toLocaleString("en-US")} = ${(100 * issueRatio[top]).toFixed(0)} % (aim ≥ 50 %); ` +
        `status p99 at ${top.toLocaleString("en-US")} ÷ at 1,000 = ${(statusP99[top] / statusP99[1000]).toFixed(2)} (aim ≤ 1.5); ` +
        `Redis per waiting user at ${top.toLocaleString("en-US")} = ${memory[top]?.toFixed(0)} B (aim ≤ 150 B)`,
    );
    const dir = join(__dirname, "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `queue-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(results, null, 2));
    console.log(`\nJSON: ${file}  (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  } finally {
    redis.disconnect();
    await server.stop();
    await redisServer.stop();
    pg.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
