/**
 * The on-sale moment end to end: N buyers join the
 * queue at once, are admitted in waves, list dates and seats, race for 500
 * seats (1 concert x 10 dates x 50), and the winners charge and pay. Run on
 * 1 server instance and on 3 instances sharing one PostgreSQL and Redis
 * (Redlock over 3 Redis nodes), each from separate load processes over
 * @grpc/grpc-js. Prints per-RPC throughput and p50/p95/p99, business
 * refusals apart from errors, where the CPU went, and the invariant check.
 *
 *   npm run bench:onsale              10,000 buyers: 1 instance, 1 instance with WORKERS=2, 3 instances
 *   npm run bench:onsale -- --quick   300 buyers, 1 instance
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";
import { createDatabase, startPostgres, startRedis, type PostgresServer, type RedisServer } from "../test/harness/services";
import { cpuMeter } from "./lib/cpu";
import { parseFlags } from "./lib/flags";
import { seedShow } from "./lib/hold-race";
import { runInvariantChecker } from "./lib/invariants";
import { fmt, percentile, table } from "./lib/load";
import type { WorkerReport } from "./lib/onsale-worker";
import { startServerProcess, type ServerProcess } from "./lib/server-process";

const LOAD_PROCESSES = 2;
const CONCERT = "onsale-2027";
const DATES = 10;
const SEATS_PER_DATE = 50;
const ROOT = join(__dirname, "..");
const ACTIVE_TTL_MS = 120_000;

export interface OnsaleResult {
  instances: number;
  workers: number;
  buyers: number;
  seconds: number;
  seatsSold: number;
  rpcs: Record<string, { calls: number; perSecond: number; p50: number; p95: number; p99: number }>;
  refusals: Record<string, number>;
  errors: Record<string, number>;
  outcomes: Record<string, number>;
  queueWait: { p50: number; p99: number };
  /** Admission -> the buyer's stream showing ACTIVE. */
  activationLag: { p50: number; p99: number; count: number };
  cpuPercent: Record<string, number>;
  invariants: { ok: boolean; output: string };
}

async function seatsSold(url: string): Promise<number> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return Number((await c.query(`select count(*) from seat where sold_reservation_id is not null`)).rows[0].count);
  } finally {
    await c.end();
  }
}

function merge(reports: WorkerReport[]): WorkerReport {
  const out: WorkerReport = { latencies: {}, refusals: {}, errors: {}, outcomes: {}, queueWaits: [], activationLags: [], cpuSeconds: 0 };
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.latencies)) {
      out.latencies[k] ??= [];
      out.latencies[k].push(...v);
    }
    for (const key of ["refusals", "errors", "outcomes"] as const) for (const [k, v] of Object.entries(r[key])) out[key][k] = (out[key][k] ?? 0) + v;
    out.queueWaits.push(...r.queueWaits);
    out.activationLags.push(...r.activationLags);
    out.cpuSeconds += r.cpuSeconds;
  }
  return out;
}

/** How big a run is: the quick pass or the full one. */
export interface OnsaleSize {
  buyers: number;
  deadlineMs: number;
}

export async function runOnsale(pg: PostgresServer, redis: RedisServer[], instances: number, size: OnsaleSize, serverWorkers = 1): Promise<OnsaleResult> {
  const { buyers, deadlineMs } = size;
  const dbName = `onsale_${instances}_${serverWorkers}_${Date.now()}`;
  const url = await createDatabase(pg.adminUrl, dbName);
  const env = {
    DATABASE_URL: url,
    REDIS_URLS: redis.map((r) => r.url).join(","),
    QUEUE_REDIS_PREFIX: `onsale:${dbName}:`,
    QUEUE_MAX_ACTIVE: "1000",
    QUEUE_ADMIT_PER_SECOND: "500",
    QUEUE_ACTIVE_TTL: `${ACTIVE_TTL_MS}ms`,
    QUEUE_IDLE_TTL: "2m",
    HOLD_MAX_PER_USER: "1",
    DB_POOL_MAX: instances === 1 ? "16" : "8",
    SEED_DEMO_CATALOG: "false",
    // Server processes per instance on its one port (node:cluster).
    WORKERS: String(serverWorkers),
  };
  // The first instance applies the migrations; the others start on a migrated schema.
  const servers: ServerProcess[] = [await startServerProcess(env)];
  for (let i = 1; i < instances; i++) servers.push(await startServerProcess(env));
  await seedShow(url, { concertId: CONCERT, dates: DATES, seatsPerDate: SEATS_PER_DATE });

  const deadline = Date.now() + deadlineMs;
  const per = Math.ceil(buyers / LOAD_PROCESSES);
  const workers: ChildProcess[] = [];
  const reports: Promise<WorkerReport>[] = [];
  const meter = cpuMeter({
    [`server x${instances}`]: () => servers.map((s) => s.pid),
    // This run's own PostgreSQL (its postmaster and every backend under it), not others on the machine.
    postgres: () => [Number(readFileSync(join(pg.dataDir, "postmaster.pid"), "utf8").split("\n")[0])],
    redis: () => redis.map((r) => r.pid),
  });
  const started = performance.now();
  for (let k = 0; k < LOAD_PROCESSES; k++) {
    const users: [number, number] = [k * per, Math.min(buyers, (k + 1) * per)];
    const w = fork(join(__dirname, "lib", "onsale-worker.ts"), [], {
      cwd: ROOT,
      execArgv: ["--import", "tsx"],
      env: {
        ...process.env,
        ONSALE_INPUT: JSON.stringify({
          ports: servers.map((s) => s.port),
          users,
          concertId: CONCERT,
          deadline,
          maxHoldAttempts: 8,
          activeTtlMs: ACTIVE_TTL_MS,
        }),
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    workers.push(w);
    reports.push(
      new Promise((resolve, reject) => {
        w.once("message", (m) => resolve(m as WorkerReport));
        w.once("exit", (code) => code !== 0 && reject(new Error(`load process exited with ${code}`)));
      }),
    );
  }
  meter.start();
  // Tell the buyers still in line once every seat is sold: they leave instead of waiting for nothing.
  const total = DATES * SEATS_PER_DATE;
  const watcher = setInterval(async () => {
    if ((await seatsSold(url).catch(() => 0)) >= total) {
      clearInterval(watcher);
      for (const w of workers) if (w.connected) w.send("sold-out");
    }
  }, 250);
  const merged = merge(await Promise.all(reports));
  clearInterval(watcher);
  const seconds = (performance.now() - started) / 1000;
  const cpuPercent = { ...meter.stop(), "load processes": (100 * merged.cpuSeconds) / seconds };
  const sold = await seatsSold(url);
  await Promise.all(servers.map((s) => s.stop()));

  const check = await runInvariantChecker(url);
  const rpcs: OnsaleResult["rpcs"] = {};
  for (const [name, lat] of Object.entries(merged.latencies)) {
    const sorted = Float64Array.from(lat).sort();
    rpcs[name] = { calls: lat.length, perSecond: lat.length / seconds, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
  }
  const waits = Float64Array.from(merged.queueWaits).sort();
  const lags = Float64Array.from(merged.activationLags).sort();
  return {
    instances,
    workers: serverWorkers,
    buyers,
    seconds,
    seatsSold: sold,
    rpcs,
    refusals: merged.refusals,
    errors: merged.errors,
    outcomes: merged.outcomes,
    queueWait: { p50: percentile(waits, 50), p99: percentile(waits, 99) },
    activationLag: { p50: percentile(lags, 50), p99: percentile(lags, 99), count: lags.length },
    cpuPercent,
    invariants: { ok: check.ok, output: check.output.trim() },
  };
}

export function printOnsale(r: OnsaleResult): void {
  const order = ["IssueToken", "ListAvailableDates", "ListAvailableSeats", "HoldSeat", "ChargeBalance", "PayReservation"];
  console.log(
    `\non-sale, ${r.instances} instance(s) x WORKERS=${r.workers}, ${r.buyers.toLocaleString("en-US")} buyers: ${r.seatsSold} of ${DATES * SEATS_PER_DATE} seats sold in ${r.seconds.toFixed(1)} s`,
  );
  console.log(
    table(
      order
        .filter((n) => r.rpcs[n])
        .map((n) => ({
          rpc: n,
          calls: r.rpcs[n].calls,
          "calls/s": r.rpcs[n].perSecond,
          "p50 ms": r.rpcs[n].p50,
          "p95 ms": r.rpcs[n].p95,
          "p99 ms": r.rpcs[n].p99,
        })),
    ),
  );
  console.log(`refusals (business): ${JSON.stringify(r.refusals)}`);
  console.log(`errors: ${Object.keys(r.errors).length ? JSON.stringify(r.errors) : "none"}`);
  console.log(`buyers: ${JSON.stringify(r.outcomes)}; queue wait p50 ${fmt(r.queueWait.p50)} ms, p99 ${fmt(r.queueWait.p99)} ms`);
  console.log(
    `admission -> ACTIVE seen on the stream (${r.activationLag.count} buyers): p50 ${fmt(r.activationLag.p50)} ms, p99 ${fmt(r.activationLag.p99)} ms`,
  );
  console.log(
    `CPU (% of one core; 200 % = both): ${Object.entries(r.cpuPercent)
      .map(([k, v]) => `${k} ${v.toFixed(0)} %`)
      .join(", ")}`,
  );
  console.log(`invariants: ${r.invariants.ok ? "all hold" : `VIOLATED\n${r.invariants.output}`}`);
}

async function main() {
  const quick = parseFlags("npm run bench:onsale -- [--quick]", { quick: { type: "boolean" } }).values.quick === true;
  const size: OnsaleSize = quick ? { buyers: 300, deadlineMs: 25_000 } : { buyers: 10_000, deadlineMs: 180_000 };
  const pg = await startPostgres();
  const redis = await Promise.all([startRedis(), startRedis(), startRedis()]);
  try {
    const one = await runOnsale(pg, redis.slice(0, 1), 1, size);
    printOnsale(one);
    // The same one instance on every core: WORKERS=2 (the quick pass skips it).
    const twoWorkers = quick ? undefined : await runOnsale(pg, redis.slice(0, 1), 1, size, 2);
    if (twoWorkers) printOnsale(twoWorkers);
    // The quick pass keeps to one instance; the 3-instance comparison is the full run's.
    const three = quick ? undefined : await runOnsale(pg, redis, 3, size);
    const rate = (r: OnsaleResult) => Object.values(r.rpcs).reduce((n, x) => n + x.calls, 0) / r.seconds;
    if (twoWorkers) {
      console.log(
        `\nWORKERS=2 ÷ WORKERS=1: ${(rate(twoWorkers) / rate(one)).toFixed(2)} (all RPCs per second), ` +
          `sell-out time ${twoWorkers.seconds.toFixed(1)} s vs ${one.seconds.toFixed(1)} s`,
      );
    }
    if (three) {
      printOnsale(three);
      console.log(
        `\n3 instances ÷ 1 instance: ${(rate(three) / rate(one)).toFixed(2)} (all RPCs per second), ` +
          `sell-out time ${three.seconds.toFixed(1)} s vs ${one.seconds.toFixed(1)} s`,
      );
    }
    const dir = join(__dirname, "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `onsale-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify({ quick, one, twoWorkers, three }, null, 2));
    console.log(`JSON: ${file}`);
  } finally {
    await Promise.all(redis.map((r) => r.stop()));
    pg.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
