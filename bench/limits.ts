/**
 * Physical limits of this machine, measured in the same run as the figures
 * they bound: redis-benchmark for the commands the
 * waiting room's scripts use. (pgbench TPC-B at the payment client counts is
 * in bench/payments.ts, beside the payments it bounds.)
 *
 *   npm run bench:limits [-- --quick]
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startRedis } from "../test/harness/services";
import { parseFlags } from "./lib/flags";
import { table } from "./lib/load";

/** The Redis commands behind IssueToken, GetQueueStatus and admission, as redis-benchmark runs them. */
const COMMANDS: Record<string, string[]> = {
  PING: ["PING"],
  INCR: ["INCR", "bench:seq"],
  "ZADD (join the line)": ["ZADD", "bench:wait", "__rand_int__", "user:__rand_int__"],
  "ZRANK (position)": ["ZRANK", "bench:wait", "user:__rand_int__"],
  "HSET (last seen)": ["HSET", "bench:u:__rand_int__", "user:__rand_int__", "1:1733000000000"],
  "HGET (ticket)": ["HGET", "bench:u:__rand_int__", "user:__rand_int__"],
  "EVAL (script call overhead)": ["EVAL", "return redis.call('ZSCORE', KEYS[1], ARGV[1])", "1", "bench:wait", "user:__rand_int__"],
};

export interface RedisLimit {
  command: string;
  clients: number;
  perSecond: number;
  p50ms: number;
}

export async function measureRedisLimits(quick: boolean): Promise<RedisLimit[]> {
  const redis = await startRedis();
  const out: RedisLimit[] = [];
  try {
    for (const clients of [1, 50]) {
      for (const [name, cmd] of Object.entries(COMMANDS)) {
        const n = quick ? 20_000 : 100_000;
        const r = spawnSync(
          "redis-benchmark",
          ["-p", String(redis.port), "-h", "127.0.0.1", "-c", String(clients), "-n", String(n), "-r", "100000", "--csv", ...cmd],
          {
            encoding: "utf8",
            timeout: 120_000,
          },
        );
        // CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
        const line =
          r.stdout
            .trim()
            .split("\n")
            .filter((l) => !l.startsWith('"test"'))
            .pop() ?? "";
        // Quoted fields; the test name itself may contain commas.
        const cells = (line.match(/"([^"]*)"/g) ?? []).map((c) => c.slice(1, -1));
        out.push({ command: name, clients, perSecond: Number(cells[1]), p50ms: Number(cells[4]) });
      }
    }
  } finally {
    await redis.stop();
  }
  return out;
}

async function main() {
  const quick = parseFlags("npm run bench:limits -- [--quick]", { quick: { type: "boolean" } }).values.quick === true;
  const limits = await measureRedisLimits(quick);
  console.log(table(limits.map((l) => ({ command: l.command, clients: String(l.clients), "ops/s": l.perSecond, "p50 ms": l.p50ms }))));
  const dir = join(__dirname, "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `limits-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ quick, redis: limits }, null, 2));
  console.log(`JSON: ${file}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
