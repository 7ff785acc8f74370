/**
 * Payment benchmark: PayReservation per second at 8, 32 and 128
 * concurrent clients over the real gRPC API (@grpc/grpc-js, x-queue-token),
 * each beside `pgbench` TPC-B at the same client count, in the same run,
 * against the same PostgreSQL server. The invariant checker runs after each
 * client count. Real PostgreSQL and Redis from the test harness, the server as
 * its own process; load from this process, to 127.0.0.1 only.
 *
 * Per client count, before any timing: users with an ACTIVE queue token (one
 * per payment: payment expires the token), a charged wallet and one HELD
 * reservation each. Tokens go through the server's own Redis store (the same
 * Lua as IssueToken) and the server's admission loop; wallets, ledger entries
 * and holds are written in SQL exactly as ChargeBalance and HoldSeat leave
 * them. Only PayReservation is timed.
 *
 *   npm run bench:payments                 full (10 s per measurement; ~1.5-2 minutes)
 *   npm run bench:payments -- --quick      quick (2 s per measurement; about a minute)
 *   npm run bench:payments -- --profile    also CPU-profile the server during the payment load
 *   options (as `--secs 5` or `--secs=5`): --clients 8,32  --secs 5  --scale 32 (pgbench)  --pool 16 (server DB_POOL_MAX)
 *            --no-key (pay without an idempotency key)
 *            --history 200000 (other users' wallets and ledger lines first, as a database in service has)
 */
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { Client } from "pg";
import { ReservationService } from "../gen/boxoffice/reservation/v1/reservation_service_pb";
import { createRedisQueueStore } from "../src/modules/queue/redis-queue-store";
import { signToken } from "../src/modules/queue/queue-token";
import type { QueueStore, TicketRef } from "../src/modules/queue/queue-store";
import { grpc, unary } from "../test/e2e/grpc-js";
import { postgresBinDir, startPostgres, startRedis } from "../test/harness/services";
import { formatSummary, summarizeProfile, type ProfileSummary, type Window } from "./lib/cpu-profile";
import { runLoad, table, type LoadResult } from "./lib/load";
import { parseFlags } from "./lib/flags";
import { seedShow } from "./lib/hold-race";
import { backendCpuSeconds, postmasterPid, treeCpuSeconds } from "./lib/proc-cpu";
import { startServerProcess, type ServerProcess } from "./lib/server-process";

const ROOT = join(__dirname, "..");
const USAGE = `npm run bench:payments -- [--quick] [--profile] [--no-key] [--clients 8,32,128] [--secs 10] [--scale 32] [--pool 16] [--history 0]`;
const flags = parseFlags(USAGE, {
  quick: { type: "boolean" },
  profile: { type: "boolean" },
  "no-key": { type: "boolean" },
  clients: { type: "string" },
  secs: { type: "string" },
  scale: { type: "string" },
  pool: { type: "string" },
  history: { type: "string" },
});
const QUICK = flags.values.quick === true;
const PROFILE = flags.values.profile === true;
const WITH_KEY = flags.values["no-key"] !== true;
const CLIENTS = flags.intList("clients", QUICK ? [8] : [8, 32, 128], 1, 1024);
const SECS = flags.int("secs", QUICK ? 2 : 10, 1, 3600);
/** Ledger rows of other users written before the run, as a database in service has (0 = a fresh database). */
const HISTORY = flags.int("history", 0, 0);
/**
 * pgbench scale: TPC-B updates one of `scale` branch rows per transaction, so
 * with fewer branches than clients it measures lock waits on those rows, not
 * the database. Payments touch no shared row (each has its own wallet, seat and
 * reservation), so the fair baseline keeps branch contention low: one branch
 * per client at 8 and 32; at 128, 32 branches (4 clients a branch) keep init
 * under 10 s here. The figure reported is labelled with the scale.
 */
const SCALE = flags.int("scale", 32, 1, 10_000);
/** Server pool: a few connections per core is what PostgreSQL serves best; more only queue inside it. */
const POOL = String(flags.int("pool", 16, 1, 200));
const PRICE = 50_000;
/** The prepared supply per client count: this many times the warm-up rate, for the whole measurement (the run reports if it ran out). */
const SUPPLY_HEADROOM = 4;
const PREFIX = "bench:pay:";
const ACTIVE_TTL = "2h";

interface Ready {
  token: string;
  reservationId: string;
}

function client(port: number, i: number): grpc.Client {
  // A private subchannel pool gives each client its own HTTP/2 connection.
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "bench.client": i });
}

/**
 * `n` users, each with a charged wallet (a CHARGE ledger line, as ChargeBalance
 * writes it), one HELD reservation of a seat of its own (as HoldSeat leaves the
 * seat and the reservation), and an ACTIVE queue token.
 */
async function prepare(db: Client, store: QueueStore, redis: Redis, key: Buffer, tag: string, n: number): Promise<Ready[]> {
  const now = new Date();
  const expires = new Date(now.getTime() + 3_600_000);
  const { concertId } = await seedShow(db, {
    concertId: `bench-pay-${tag}`,
    dates: Math.ceil(n / 50),
    seatsPerDate: 50,
    price: PRICE,
    firstDate: "2030-01-01",
  });
  await db.query("begin");
  const { rows } = await db.query<{ id: string; user_id: string }>(
    `insert into reservation (id, user_id, seat_id, amount, status, hold_expires_at, created_at)
     select gen_random_uuid(), $2 || row_number() over (order by s.id), s.id, s.price, 'HELD', $3, $4
     from seat s join concert_date d on d.id = s.concert_date_id where d.concert_id = $1
     order by s.id limit $5
     returning id, user_id`,
    [concertId, `${tag}-`, expires, now, n],
  );
  await db.query(
    `update seat s set held_by_reservation_id = r.id, hold_expires_at = r.hold_expires_at, version = s.version + 1
     from reservation r where r.seat_id = s.id and r.id = any($1::uuid[])`,
    [rows.map((r) => r.id)],
  );
  await db.query(
    `insert into wallet (user_id, balance, version, created_at, updated_at)
     select u, $2, 1, $3, $3 from unnest($1::text[]) u`,
    [rows.map((r) => r.user_id), 2 * PRICE, now],
  );
  await db.query(
    `insert into wallet_entry (id, user_id, kind, amount, balance_after, created_at)
     select gen_random_uuid(), u, 'CHARGE', $2, $2, $3 from unnest($1::text[]) u`,
    [rows.map((r) => r.user_id), 2 * PRICE, now],
  );
  await db.query("commit");
  // Fresh statistics, as a live database has; autoanalyze would otherwise land mid-run.
  await db.query("analyze concert_date, seat, reservation, wallet, wallet_entry, payment");

  // Tokens through the server's own store; the server's admission loop makes them ACTIVE.
  const tickets: TicketRef[] = [];
  for (let i = 0; i < rows.length; i += 5000) {
    const batch = rows.slice(i, i + 5000);
    const made = await Promise.all(batch.map((r) => store.issue(r.user_id, Date.now(), 3_600_000)));
    tickets.push(...made.map((t) => ({ userId: t.userId, seq: t.seq })));
  }
  const deadline = Date.now() + 30_000;
  while ((await redis.zcard(`${PREFIX}wait`)) > 0) {
    if (Date.now() > deadline) throw new Error("the server did not admit the prepared tokens within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  const states = await store.status(tickets, Date.now(), 3_600_000, false);
  const notActive = states.filter((s) => s.state !== "ACTIVE").length;
  if (notActive) throw new Error(`${notActive} prepared tokens are not ACTIVE`);
  return rows.map((r, i) => ({ reservationId: r.id, token: signToken(key, tickets[i]) }));
}

/** Pays every prepared reservation it reaches; closed loop at `concurrency`. */
async function payLoad(clients: grpc.Client[], ready: Ready[], concurrency: number, durationMs: number, tag: string): Promise<LoadResult> {
  return runLoad({
    concurrency,
    durationMs,
    maxCalls: ready.length,
    call: async (i): Promise<undefined> => {
      const md = new grpc.Metadata();
      md.set("x-queue-token", ready[i].token);
      const res = await unary(
        clients[i % clients.length],
        ReservationService.method.payReservation,
        { reservationId: ready[i].reservationId, idempotencyKey: WITH_KEY ? `${tag}-${i}` : "" },
        md,
      );
      if (res.message.payment?.amount !== BigInt(PRICE) || res.message.balance !== BigInt(PRICE)) {
        throw new Error(`unexpected payment result: amount ${res.message.payment?.amount}, balance ${res.message.balance}`);
      }
    },
  });
}

function run(cmd: string, argv: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b) => (out += b));
    child.stderr.on("data", (b) => (out += b));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, out }));
  });
}

interface PgbenchResult {
  clients: number;
  /** Steady state: the mean of pgbench's per-second progress after its connections are up and one second of warm-up. */
  tps: number;
  /** pgbench's own summary figure (without connection time, but with the cold first second). */
  summaryTps: number;
  latencyAvgMs: number;
  /** CPU milliseconds of pgbench's backends per transaction, steady seconds only. */
  pgCpuMsPerTx?: number;
}

/**
 * TPC-B, `-M prepared`: named prepared statements are the database's best
 * case (no parse or plan per statement), so the ratio is measured against the
 * ceiling. `-j 2`: one pgbench thread per core. Opening 128 connections takes
 * seconds on a small machine, and -T counts that time, so the run is longer
 * than `secs` and the figure is taken from the per-second progress lines once
 * every client is connected and warm (`-P 1`).
 */
async function pgbench(pgbin: string, port: number, clients: number, secs: number, pgPid?: number): Promise<PgbenchResult> {
  const total = secs + 1 + Math.ceil(clients / 32);
  // pgbench's backends' CPU, sampled through the run to charge only the steady seconds (backend start-up is not a transaction's cost).
  const cpuAt: { ms: number; cpu: number }[] = [];
  const t0 = performance.now();
  const sample = () => pgPid && cpuAt.push({ ms: performance.now() - t0, cpu: backendCpuSeconds(pgPid, "pgbench") });
  sample();
  const sampler = setInterval(sample, 250);
  const r = await run(join(pgbin, "pgbench"), [
    ...["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"],
    ...["-c", String(clients), "-j", "2", "-T", String(total), "-P", "1", "-M", "prepared", "pgbench"],
  ]);
  clearInterval(sampler);
  const summary = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(r.out);
  if (r.code !== 0 || !summary) throw new Error(`pgbench failed (${r.code}):\n${r.out}`);
  const progress = [...r.out.matchAll(/progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+) ms/g)].map((m) => ({
    at: Number(m[1]),
    tps: Number(m[2]),
    lat: Number(m[3]),
  }));
  const first = progress.findIndex((p) => p.tps > 0);
  const steady = first >= 0 ? progress.slice(first + 2) : [];
  if (steady.length === 0) throw new Error(`pgbench gave no steady-state progress lines:\n${r.out}`);
  const mean = (f: (p: (typeof steady)[number]) => number) => steady.reduce((a, p) => a + f(p), 0) / steady.length;
  // CPU over the steady seconds but the last: as pgbench ends, its backends exit and take their counters with them.
  const cpuNear = (ms: number) => cpuAt.reduce((best, x) => (Math.abs(x.ms - ms) < Math.abs(best.ms - ms) ? x : best)).cpu;
  const cpuLines = steady.length > 1 ? steady.slice(0, -1) : steady;
  const from = (cpuLines[0].at - 1) * 1000;
  const to = cpuLines[cpuLines.length - 1].at * 1000;
  const steadyTx = cpuLines.reduce((a, p) => a + p.tps, 0);
  return {
    clients,
    tps: mean((p) => p.tps),
    summaryTps: Number(summary[1]),
    latencyAvgMs: mean((p) => p.lat),
    pgCpuMsPerTx: pgPid ? (1000 * (cpuNear(to) - cpuNear(from))) / steadyTx : undefined,
  };
}

/** "ok", "VIOLATED" (a rule broken), or "CHECK FAILED" (the checker itself did not run through). */
async function checkInvariants(databaseUrl: string): Promise<{ ok: boolean; verdict: string; output: string }> {
  const r = await run("npm", ["run", "--silent", "check:invariants"], { DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" });
  const verdict = r.code === 0 ? "ok" : /^\s*VIOLATED/m.test(r.out) ? "VIOLATED" : "CHECK FAILED";
  return { ok: r.code === 0, verdict, output: r.out.trim() };
}

function newestProfile(dir: string): string | undefined {
  // tsx's launcher writes a small profile too; the server's is the large one.
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  return files.map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

async function main() {
  // Children (redis-server) are unref'd: keep the loop alive until the report is out.
  const keepAlive = setInterval(() => undefined, 60_000);
  const started = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const resultsDir = join(__dirname, "results");
  const profileDir = join(resultsDir, `payments-profile-${stamp}`);
  console.log(
    `payments benchmark (${QUICK ? "quick" : "full"}${PROFILE ? ", CPU profile" : ""}): ${SECS} s per measurement, clients ${CLIENTS.join("/")}, pgbench scale ${SCALE}` +
      (HISTORY ? `, ${HISTORY.toLocaleString("en-US")} ledger lines of history` : ""),
  );
  const [pg, redisServer] = await Promise.all([startPostgres(), startRedis()]);
  const pgbin = postgresBinDir();
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  if (PROFILE) mkdirSync(profileDir, { recursive: true });
  const db = new Client({ connectionString: pg.adminUrl });
  let server: ServerProcess | undefined;
  const results: Record<string, unknown> = {
    quick: QUICK,
    secs: SECS,
    history: HISTORY,
    pgbenchScale: SCALE,
    dbPoolMax: Number(POOL),
    idempotencyKey: WITH_KEY,
    profile: PROFILE,
    levels: [],
  };
  const rows: Record<string, string | number>[] = [];
  const windows: Window[] = [];
  let failed = false;

  try {
    await db.connect();
    // pgbench's tables load while the server starts: both are set-up, neither is timed.
    const t0 = Date.now();
    await db.query("create database pgbench");
    const serverEnv = {
      DATABASE_URL: pg.adminUrl,
      REDIS_URLS: redisServer.url,
      QUEUE_REDIS_PREFIX: PREFIX,
      // Admission is not what is measured: let everyone prepared in at once.
      QUEUE_MAX_ACTIVE: "10000000",
      QUEUE_ADMIT_PER_SECOND: "1000000",
      QUEUE_ACTIVE_TTL: ACTIVE_TTL,
      QUEUE_IDLE_TTL: "1h",
      DB_POOL_MAX: POOL,
    };
    const [srv, init] = await Promise.all([
      startServerProcess(serverEnv, PROFILE ? { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {}),
      run(join(pgbin, "pgbench"), ["-i", "-q", "-s", String(SCALE), "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "pgbench"]),
    ]);
    server = srv;
    if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.out}`);
    console.log(`server up and pgbench -i -s ${SCALE} done: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const pgPid = postmasterPid(pg.dataDir);

    if (HISTORY > 0) {
      const th = Date.now();
      // Charged wallets of earlier users, one ledger line each (balance = ledger, so the invariants hold).
      await db.query(
        `with w as (insert into wallet (user_id, balance, version, created_at, updated_at)
                    select 'history-' || g, 10000, 1, now(), now() from generate_series(1, $1::int) g returning user_id)
         insert into wallet_entry (id, user_id, kind, amount, balance_after, idempotency_key, created_at)
         select gen_random_uuid(), user_id, 'CHARGE', 10000, 10000, 'topup-1', now() from w`,
        [HISTORY],
      );
      await db.query("vacuum analyze wallet, wallet_entry");
      console.log(`history: ${HISTORY.toLocaleString("en-US")} wallets and ledger lines of other users (${((Date.now() - th) / 1000).toFixed(1)} s)`);
    }
    const store = createRedisQueueStore(redis, PREFIX);
    const key = await store.tokenSecret();
    const connections = Math.max(...CLIENTS.map((c) => Math.ceil(c / 16)));
    const clients = Array.from({ length: connections }, (_, i) => client(srv.port, i));

    // Warm-up: JIT, pool connections and HTTP/2 sessions, not measured.
    const warm = await prepare(db, store, redis, key, "warm", 3000);
    const w = await payLoad(clients, warm, 32, 2000, "warm");
    if (w.errors) throw new Error(`warm-up payments failed: ${w.errorSamples.join("; ")}`);
    const supply = Math.max(1000, Math.ceil(SUPPLY_HEADROOM * w.perSecond * SECS));
    console.log(`warm-up: ${w.perSecond.toFixed(0)} payments/s at 32 clients; preparing ${supply.toLocaleString("en-US")} payments per client count`);

    for (const c of CLIENTS) {
      const tag = `c${c}`;
      const tp = Date.now();
      const ready = await prepare(db, store, redis, key, tag, supply);
      const prepMs = Date.now() - tp;
      const base = await pgbench(pgbin, pg.port, c, SECS, pgPid);

      // Each load uses ceil(c / 16) HTTP/2 connections, as many clients behind a few channels.
      const conns = clients.slice(0, Math.ceil(c / 16));
      const serverCpu0 = treeCpuSeconds(srv.pid);
      const pgCpu0 = pgPid ? backendCpuSeconds(pgPid, "postgres") : 0;
      const pgAll0 = pgPid ? treeCpuSeconds(pgPid) : 0;
      const benchCpu0 = process.cpuUsage();
      const fromUs = Number(process.hrtime.bigint() / 1000n);
      const pay = await payLoad(conns, ready, c, SECS * 1000, tag);
      const toUs = Number(process.hrtime.bigint() / 1000n);
      windows.push({ fromUs, toUs });
      const serverCpu = treeCpuSeconds(srv.pid) - serverCpu0;
      const pgCpu = pgPid ? backendCpuSeconds(pgPid, "postgres") - pgCpu0 : NaN;
      const pgAll = pgPid ? treeCpuSeconds(pgPid) - pgAll0 : NaN;
      const benchCpuUs = process.cpuUsage(benchCpu0);
      const benchCpu = (benchCpuUs.user + benchCpuUs.system) / 1e6;

      const [{ n: confirmed }] = (
        await db.query<{ n: string }>(`select count(*) as n from reservation where user_id like $1 and status = 'CONFIRMED'`, [`${tag}-%`])
      ).rows;
      const inv = await checkInvariants(pg.adminUrl);
      const ratio = pay.perSecond / base.tps;
      const ranOut = pay.calls + pay.errors >= ready.length;
      const msPer = (s: number) => (pay.calls ? (1000 * s) / pay.calls : NaN);
      rows.push({
        clients: String(c),
        "payments/s": pay.perSecond,
        "p50 ms": pay.p50,
        "p99 ms": pay.p99,
        errors: String(pay.errors),
        "pgbench tps": base.tps,
        "pgbench ms": base.latencyAvgMs,
        "÷ pgbench": `${(100 * ratio).toFixed(0)} %`,
        "CPU ms/payment: server, pg, load": `${msPer(serverCpu).toFixed(2)}, ${msPer(pgCpu).toFixed(2)}, ${msPer(benchCpu).toFixed(2)}`,
        "pg CPU ms/pgbench tx": base.pgCpuMsPerTx?.toFixed(2) ?? "",
        invariants: inv.verdict,
      });
      (results.levels as unknown[]).push({
        clients: c,
        prepared: ready.length,
        prepareMs: prepMs,
        supplyRanOut: ranOut,
        confirmed: Number(confirmed),
        payments: pay,
        pgbench: base,
        ratio,
        // postgres: the app database's backends; postgresAll: every PostgreSQL process (autovacuum, checkpoints, ...).
        cpuSeconds: { server: serverCpu, postgres: pgCpu, postgresAll: pgAll, bench: benchCpu },
        invariants: inv,
      });
      console.log(
        `  ${c} clients: ${pay.perSecond.toFixed(0)} payments/s (p50 ${pay.p50.toFixed(1)} ms, p99 ${pay.p99.toFixed(1)} ms, ${pay.errors} errors), ` +
          `pgbench ${base.tps.toFixed(0)} tps -> ${(100 * ratio).toFixed(0)} %; ${confirmed} confirmed; invariants ${inv.verdict}` +
          (ranOut ? " [prepared supply ran out before the time: raise SUPPLY_HEADROOM]" : ""),
      );
      if (pay.errorSamples.length) console.log(`    errors: ${pay.errorSamples.join(" | ")}`);
      if (!inv.ok) {
        console.log(inv.output);
        failed = true;
      }
      if (Number(confirmed) !== pay.calls) {
        console.log(`    ${confirmed} reservations confirmed but ${pay.calls} payments answered OK`);
        failed = true;
      }
    }
    for (const x of clients) x.close();

    console.log(`\n${table(rows)}`);
    const last = (results.levels as { clients: number; ratio: number }[]).map((l) => `${l.clients}: ${(100 * l.ratio).toFixed(0)} %`).join(", ");
    console.log(`\npayments ÷ pgbench TPC-B (scale ${SCALE}, -M prepared, same run, same PostgreSQL): ${last} (aim ≥ 60 %)`);
    console.log(
      `server DB pool ${POOL}; ${WITH_KEY ? "each payment carries an idempotency key" : "no idempotency keys"}; load generator shares the machine's cores`,
    );
  } finally {
    await db.end().catch(() => undefined);
    redis.disconnect();
    await server?.stop();
    await redisServer.stop();
    pg.stop();
  }

  if (PROFILE) {
    const file = newestProfile(profileDir);
    if (!file) throw new Error(`no .cpuprofile written under ${profileDir}`);
    const summaries: Record<string, ProfileSummary> = {};
    const all = summarizeProfile(file, { windows, top: 30 });
    summaries.allLevels = all;
    console.log(`\nserver CPU profile, payment loads only (${file}):\n${formatSummary(all)}`);
    for (const [i, c] of CLIENTS.entries()) summaries[`clients${c}`] = summarizeProfile(file, { windows: [windows[i]], top: 30 });
    results.profile = { file, windows, summaries };
  }
  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, `payments-${stamp}.json`);
  writeFileSync(
    out,
    JSON.stringify(results, (_k, v) => (typeof v === "bigint" ? String(v) : v), 2),
  );
  console.log(`\nJSON: ${out}  (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  clearInterval(keepAlive);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
