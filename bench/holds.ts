/**
 * On-sale contention benchmark: USERS users with ACTIVE queue
 * tokens race for 50 seats × 10 dates. HoldSeat throughput (attempts and
 * grants per second) and p50/p95/p99, refusals counted apart from errors,
 * winners per seat counted in the database afterwards (must be exactly 1),
 * the invariant checker's verdict, all beside the bare-RPC baseline
 * (Health/Check: the same server stack doing no work) measured in the same
 * run at the same concurrency, and where the CPU went during the race (this
 * run's processes, and everything else on the machine). Real PostgreSQL,
 * Redis (Redlock on one node) and the server as its own process; load from
 * this process over @grpc/grpc-js, to 127.0.0.1 only. Exits 1 if a seat has
 * two winners or the invariant checker fails; the aims are reported, not asserted.
 *
 *   npm run bench:holds              full: 10,000 users
 *   npm run bench:holds -- --quick   1,000 users, under a minute on a quiet machine
 * Options (as `--users 8` or `--users=8`): --users N --concurrency N (64) --flow hold|browse (hold) --tries N (3) --pool N (DB_POOL_MAX, 8)
 *   --cpu-prof: the server writes a V8 CPU profile under bench/results/ (the
 *     JSON gives the race's window on the same monotonic clock as the profile).
 *   flow "hold": each user calls HoldSeat on a random seat of the 500, and on
 *     SEAT_UNAVAILABLE tries another, up to --tries times (the hold path alone).
 *   flow "browse": like a real client, ListAvailableDates, ListAvailableSeats of
 *     a random listed date, then HoldSeat on a random listed seat; the list
 *     RPCs share the server, so HoldSeat ÷ bare is lower than in "hold".
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Health } from "../gen/grpc/health/v1/health_pb";
import { grpc, unary } from "../test/e2e/grpc-js";
import { startPostgres, startRedis } from "../test/harness/services";
import { cpuMeter } from "./lib/cpu";
import { runInvariantChecker } from "./lib/invariants";
import { fmt, runLoad, table, type LoadResult } from "./lib/load";
import { activateUsers, checkWinners, createDatabase, raceForSeats, seedShow, type RaceFlow } from "./lib/hold-race";
import type { RpcSummary } from "./lib/rpc-stats";
import { parseFlags } from "./lib/flags";
import { startServerProcess, type ServerProcess } from "./lib/server-process";

const USAGE = `npm run bench:holds -- [--quick] [--users N] [--concurrency 64] [--flow hold|browse] [--tries 3] [--pool 8] [--cpu-prof]`;
const flags = parseFlags(USAGE, {
  quick: { type: "boolean" },
  users: { type: "string" },
  concurrency: { type: "string" },
  tries: { type: "string" },
  pool: { type: "string" },
  flow: { type: "string" },
  "cpu-prof": { type: "boolean" },
});

const QUICK = flags.values.quick === true;
const USERS = flags.int("users", QUICK ? 1_000 : 10_000, 1, 100_000);
const CONCURRENCY = flags.int("concurrency", 64, 1, 1024);
const TRIES = flags.int("tries", 3, 1, 20);
const POOL = flags.int("pool", 8, 1, 200);
const FLOW: RaceFlow = flags.oneOf("flow", ["hold", "browse"], "hold");
const CPU_PROF = flags.values["cpu-prof"] === true;
const DATES = 10;
const SEATS_PER_DATE = 50;
const MAX_PER_USER = 1;
/** Users who race for a separate 50-seat show first, so JIT and pools are warm when the measured race starts. */
const WARMUP_USERS = 200;
const BARE_MS = QUICK ? 2_000 : 5_000;
const TOKENS_MAX_MS = QUICK ? 30_000 : 120_000;
const RACE_MAX_MS = QUICK ? 30_000 : 120_000;
const CLIENTS = 4;
const PREFIX = "bench:holds:";
const HOLD_P99_AIM_MS = 100;
const HOLD_RATIO_AIM = 0.3;

function client(port: number, i: number): grpc.Client {
  // A private subchannel pool gives each client its own connection.
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "bench.client": i });
}

/** CPU seconds the whole machine has spent busy (all cores, everything but idle and iowait), from /proc/stat. */
function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / 100;
}

const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const met = (ok: boolean) => (ok ? "met" : "MISSED");

async function main() {
  const started = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(__dirname, "results");
  const profileDir = join(dir, `holds-${stamp}-profile`);
  console.log(
    `on-sale hold benchmark (${QUICK ? "quick" : "full"}): ${USERS.toLocaleString("en-US")} users, ${DATES} dates × ${SEATS_PER_DATE} seats, ` +
      `flow ${FLOW}, ${TRIES} tries, ${CONCURRENCY} in flight, DB_POOL_MAX ${POOL}; services starting...`,
  );
  const [pg, redisServer] = await Promise.all([startPostgres(), startRedis()]);
  let server: ServerProcess | undefined;
  let clients: grpc.Client[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const c of clients) c.close();
      await server?.stop().catch(() => undefined);
      await redisServer.stop().catch(() => undefined);
      try {
        pg.stop();
      } catch {
        /* already gone */
      }
    })());
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    const databaseUrl = await createDatabase(pg.adminUrl, "bench_holds");
    const serverEnv = {
      DATABASE_URL: databaseUrl,
      REDIS_URLS: redisServer.url,
      QUEUE_REDIS_PREFIX: PREFIX,
      SEED_DEMO_CATALOG: "false",
      // Everyone is admitted at once: this benchmark is about the seats, not the line.
      QUEUE_MAX_ACTIVE: String(USERS + WARMUP_USERS + 100),
      QUEUE_ADMIT_PER_SECOND: "100000",
      QUEUE_TICK: "100ms",
      QUEUE_ACTIVE_TTL: "30m",
      QUEUE_IDLE_TTL: "10m",
      // Longer than any run, so the count afterwards sees every hold still live.
      HOLD_TTL: "30m",
      HOLD_MAX_PER_USER: String(MAX_PER_USER),
      DB_POOL_MAX: String(POOL),
    };
    server = await startServerProcess(serverEnv, CPU_PROF ? { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {});
    // The server has migrated the schema by now; the catalog goes straight in.
    const show = await seedShow(databaseUrl, { concertId: "bench-onsale", dates: DATES, seatsPerDate: SEATS_PER_DATE });
    const warmShow = await seedShow(databaseUrl, { concertId: "bench-warmup", dates: 1, seatsPerDate: SEATS_PER_DATE, firstDate: "2027-08-01" });
    clients = Array.from({ length: CLIENTS }, (_, i) => client(server!.port, i));

    const warmIds = Array.from({ length: WARMUP_USERS }, (_, i) => `warm-${i}`);
    const userIds = Array.from({ length: USERS }, (_, i) => `fan-${String(i).padStart(6, "0")}`);
    const activation = await activateUsers(clients, [...warmIds, ...userIds], { concurrency: CONCURRENCY, timeoutMs: TOKENS_MAX_MS });
    const warmTokens = activation.tokens.slice(0, WARMUP_USERS);
    const tokens = activation.tokens.slice(WARMUP_USERS);
    console.log(
      `setup: ${activation.tokens.length.toLocaleString("en-US")} tokens ACTIVE over IssueToken + GetQueueStatus in ${activation.seconds.toFixed(1)} s ` +
        `(IssueToken ${fmt(activation.issue.perSecond)}/s, p99 ${fmt(activation.issue.p99)} ms; ${activation.polls.toLocaleString("en-US")} status polls)`,
    );

    // Warm up: the bare path, then a small race on its own show (the hold path, transactions included).
    const bareCall = (i: number) => unary(clients[i % CLIENTS], Health.method.check, { service: "" }).then(() => undefined);
    await runLoad({ concurrency: CONCURRENCY, durationMs: 1000, call: bareCall });
    const warm = await raceForSeats({ clients, tokens: warmTokens, show: warmShow, flow: FLOW, tries: TRIES, concurrency: CONCURRENCY, maxMs: 20_000 });
    if (warm.users.errors) throw new Error(`warm-up race: ${warm.users.errors} errors (${warm.users.errorSamples.join("; ")})`);

    const bare: LoadResult = await runLoad({ concurrency: CONCURRENCY, durationMs: BARE_MS, call: bareCall });

    // Where the CPU goes during the race: this run's processes only (other PostgreSQL servers may share the machine).
    const postmaster = Number(readFileSync(join(pg.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    const serverPid = server.pid;
    // cpuMeter adds each root's descendants, so this process (the parent of the server and Redis) is measured on its own.
    const meter = cpuMeter({ server: () => [serverPid], postgres: () => [postmaster], redis: () => [redisServer.pid] });
    const m0 = await server.metrics();
    meter.start();
    const load0 = process.cpuUsage();
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    const raceStartUs = process.hrtime.bigint() / 1000n;
    const race = await raceForSeats({ clients, tokens, show, flow: FLOW, tries: TRIES, concurrency: CONCURRENCY, maxMs: RACE_MAX_MS });
    const raceEndUs = process.hrtime.bigint() / 1000n;
    const loadUsage = process.cpuUsage(load0);
    const cpu = meter.stop();
    const raceMs = performance.now() - t0;
    cpu["load (this process)"] = (100 * (loadUsage.user + loadUsage.system)) / 1000 / raceMs;
    // What the rest of the machine used meanwhile: a busy neighbour makes every figure of this run indicative only.
    const ours = Object.values(cpu).reduce((a, b) => a + b, 0);
    cpu["other processes"] = Math.max(0, (100 * (machineBusySeconds() - busy0) * 1000) / raceMs - ours);
    const m1 = await server.metrics();

    const winners = await checkWinners(databaseUrl, show.concertId, race.grants, MAX_PER_USER);
    const invariants = await runInvariantChecker(databaseUrl);

    // Report.
    const hold = race.stats.summary("HoldSeat", race.seconds);
    const granted = race.stats.summary("HoldSeat granted", race.seconds);
    const refused = race.stats.summary("HoldSeat refused", race.seconds);
    const grantTimes = race.grants.map((g) => g.atMs / 1000).sort((a, b) => a - b);
    const lastGrantS = grantTimes.length ? grantTimes[grantTimes.length - 1] : NaN;
    const seatCount = DATES * SEATS_PER_DATE;
    const seatsTakenAt = (share: number): number | undefined => grantTimes[Math.ceil(share * seatCount) - 1];
    const grantedPerSecond = race.grants.length / lastGrantS;
    const holdRatio = hold.perSecond / bare.perSecond;
    const rows: Record<string, string | number>[] = [];
    const row = (
      name: string,
      r: Pick<RpcSummary, "calls" | "perSecond" | "p50" | "p95" | "p99">,
      refusals: number | string,
      errors: number | string,
      ratio = true,
    ) =>
      rows.push({
        scenario: name,
        calls: r.calls,
        "calls/s": r.perSecond,
        "p50 ms": r.p50,
        "p95 ms": r.p95,
        "p99 ms": r.p99,
        refused: refusals,
        errors,
        "÷ bare": ratio ? pct(r.perSecond / bare.perSecond) : "",
      });
    row("bare RPC (Health/Check)", bare, "", bare.errors, false);
    row("HoldSeat, all attempts", hold, hold.refusals, hold.errors);
    row("  granted only", granted, "", "", false);
    row("  refused only", refused, "", "", false);
    for (const name of ["ListAvailableDates", "ListAvailableSeats"]) {
      if (!race.stats.names().includes(name)) continue;
      const s = race.stats.summary(name, race.seconds);
      row(name, s, s.refusals, s.errors);
    }
    const rpcsPerSecond = race.stats
      .names()
      .filter((n) => !n.startsWith("HoldSeat "))
      .reduce((sum, n) => sum + race.stats.summary(n, race.seconds).perSecond, 0);

    console.log(`\n${table(rows)}`);
    const o = race.outcomes;
    console.log(
      `\nrace: ${race.users.calls + race.users.errors} of ${USERS.toLocaleString("en-US")} users ran in ${race.seconds.toFixed(2)} s` +
        (o.notRun ? ` (${o.notRun} not started: time cap ${RACE_MAX_MS / 1000} s)` : "") +
        `; won ${o.won}, out of tries ${o.refusedOut}, saw sold out ${o.soldOut}, hold limit ${o.limit}, errored ${o.errored}`,
    );
    console.log(
      `holds: ${fmt(hold.perSecond)} attempts/s; ${race.grants.length} granted in ${lastGrantS.toFixed(2)} s = ${fmt(grantedPerSecond)} granted/s; ` +
        `refused ${hold.refusals} (${
          Object.entries(hold.refusedBy)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ") || "none"
        }); errors ${hold.errors}`,
    );
    const at = (share: number) => seatsTakenAt(share)?.toFixed(2).concat(" s") ?? "not reached";
    console.log(`seats taken: half at ${at(0.5)}, 90 % at ${at(0.9)}, all at ${at(1)} after the race began`);
    if (FLOW === "browse") console.log(`all race RPCs: ${fmt(rpcsPerSecond)}/s = ${pct(rpcsPerSecond / bare.perSecond)} of bare`);
    const errorSamples = race.stats.names().flatMap((n) => race.stats.summary(n, race.seconds).errorSamples.map((e) => `${n}: ${e}`));
    for (const e of errorSamples.slice(0, 5)) console.log(`  error: ${e}`);
    console.log(
      `winners per seat: ${winners.exactlyOne} of ${winners.seats} seats held by exactly 1, ${winners.free} free, ${winners.moreThanOne} held twice or more ` +
        `(max ${winners.maxPerSeat} per seat; must be 1); seat rows disagreeing ${winners.seatRowMismatches}; users over the limit ${winners.usersOverLimit}; ` +
        `grants not in the database ${winners.grantsMissingInDb}, live holds no client was told of ${winners.liveNotGranted}, seats granted twice ${winners.seatsGrantedTwice} ` +
        `=> ${winners.ok ? (winners.free === 0 ? "OK" : "OK (some seats left free)") : "VIOLATED"}`,
    );
    for (const e of winners.examples) console.log(`  ${e}`);
    const series = (m: Map<string, number>, prefix: string) =>
      [...m].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length) || "total", v - (m0.get(k) ?? 0)] as const);
    const serverCounts = {
      granted: series(m1, "holds_granted_total"),
      refused: series(m1, "holds_refused_total"),
      locks: series(m1, "hold_locks_total"),
    };
    console.log(
      `server counters during the race: granted ${serverCounts.granted.map(([, v]) => v).join("") || "n/a"}; ` +
        `refused ${serverCounts.refused.map(([k, v]) => `${k} ${v}`).join(", ") || "none"}; locks ${serverCounts.locks.map(([k, v]) => `${k} ${v}`).join(", ") || "n/a"}`,
    );
    console.log(
      `CPU during the race (% of one core; 2 cores = 200 %): ${Object.entries(cpu)
        .map(([k, v]) => `${k} ${v.toFixed(0)} %`)
        .join(", ")}; ` + `machine load average ${readFileSync("/proc/loadavg", "utf8").split(" ")[0]}`,
    );
    console.log(
      `aims: HoldSeat p99 ${fmt(hold.p99)} ms (aim < ${HOLD_P99_AIM_MS} ms: ${met(hold.p99 < HOLD_P99_AIM_MS)}); ` +
        `HoldSeat attempts ÷ bare ${pct(holdRatio)} (aim ≥ ${pct(HOLD_RATIO_AIM)}: ${met(holdRatio >= HOLD_RATIO_AIM)})`,
    );
    console.log(`invariants (npm run check:invariants): ${invariants.ok ? "ok" : `FAILED (exit ${invariants.exitCode})`}`);
    for (const line of invariants.output.split("\n")) console.log(`  ${line}`);

    const results = {
      quick: QUICK,
      users: USERS,
      dates: DATES,
      seatsPerDate: SEATS_PER_DATE,
      flow: FLOW,
      tries: TRIES,
      concurrency: CONCURRENCY,
      dbPoolMax: POOL,
      holdMaxPerUser: MAX_PER_USER,
      setup: { seconds: activation.seconds, issueToken: activation.issue, statusPolls: activation.polls },
      bare,
      race: {
        seconds: race.seconds,
        outcomes: race.outcomes,
        grants: race.grants.length,
        lastGrantSeconds: lastGrantS,
        seatsTakenSeconds: { half: seatsTakenAt(0.5) ?? null, ninetyPercent: seatsTakenAt(0.9) ?? null, all: seatsTakenAt(1) ?? null },
        grantedPerSecond,
        rpc: Object.fromEntries(race.stats.names().map((n) => [n, race.stats.summary(n, race.seconds)])),
      },
      holdToBare: holdRatio,
      aims: { holdP99Ms: HOLD_P99_AIM_MS, holdToBare: HOLD_RATIO_AIM, p99Met: hold.p99 < HOLD_P99_AIM_MS, ratioMet: holdRatio >= HOLD_RATIO_AIM },
      winners,
      serverCounters: serverCounts,
      cpuPercentDuringRace: cpu,
      // Microseconds on CLOCK_MONOTONIC, the clock of V8 profile timestamps.
      raceWindowMonotonicUs: { start: Number(raceStartUs), end: Number(raceEndUs) },
      cpuProfileDir: CPU_PROF ? profileDir : null,
      invariants,
    };
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `holds-${stamp}.json`);
    writeFileSync(file, JSON.stringify(results, null, 2));
    console.log(`\nJSON: ${file}  (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
    if (CPU_PROF) console.log(`server CPU profile: ${profileDir} (written when the server stops)`);
    if (!winners.ok || !invariants.ok) process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
