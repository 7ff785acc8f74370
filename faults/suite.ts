/**
 * Runs fault scenarios against a real deployment on this machine: one
 * PostgreSQL for the run (a fresh database per scenario), and per scenario
 * three fresh Redis nodes (the queue on the first, Redlock over all), two
 * server processes and load from separate processes over gRPC and Connect.
 * After each scenario: the invariant checker, and every client-side OK
 * reconciled against the database. Nothing here throws for a capability the
 * code lacks: that shows up as numbers in the report.
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb";
import { QueueStatus } from "../gen/boxoffice/queue/v1/queue_pb";
import { QueueService } from "../gen/boxoffice/queue/v1/queue_service_pb";
import { seedShow } from "../bench/lib/hold-race";
import { runInvariantChecker } from "../bench/lib/invariants";
import { createDatabase, startPostgres, type PostgresServer } from "../test/harness/services";
import { availability, callFigures, failureKey, queueFigures, type Availability, type CallFigures, type FaultWindow, type QueueFigures } from "./lib/analyze";
import type { Attempt } from "./lib/attempts";
import { createServerInstance, postgresControl, ROOT, sleep, startRedisNode, type PostgresControl, type RedisNode, type ServerInstance } from "./lib/cluster";
import { dataLost, reconcile, type Reconciliation } from "./lib/reconcile";
import { createGrpcCaller, describeFailure } from "./load/callers";
import type { LoadInput, LoadReport } from "./load/buyer-worker";
import { FULL, QUICK, readmeStartCommand, SCENARIOS, type Scenario, type StartCommand, type Timing } from "./scenarios";

export interface SuiteOptions {
  quick: boolean;
  /** Scenario names to run; all when empty. */
  scenarios?: string[];
  /** Where logs and raw attempt records go. */
  outDir: string;
  /** Extra server environment (e.g. QUEUE_TOKEN_SECRETS), over the suite's own. */
  serverEnv?: Record<string, string>;
  log?: (line: string) => void;
}

export interface TokenCheck {
  /** Users asked on both instances. */
  users: number;
  /**
   * Users for whom one instance did not honour the other's token: GetQueueStatus
   * on B of the token A just issued (and the other way round) answered NOT_FOUND
   * (not our token) or EXPIRED.
   */
  split: number;
  /** Users whose IssueToken gave different token strings on A and B (information: a token may carry state). */
  differentTokens: number;
  /** Users for whom an instance failed to answer. */
  unanswered: number;
  /** Health/Check SERVING per instance after the load. */
  servingAtEnd: boolean[];
}

export interface ScenarioReport {
  name: string;
  title: string;
  /** Set when the scenario itself could not run (setup failed, ...): its figures are then missing or partial. */
  error?: string;
  holdKeySent?: boolean;
  seconds: number;
  fault?: { startOffsetMs: number; durationMs: number; marks: Record<string, number>; notes: FaultWindow["notes"] };
  calls?: CallFigures;
  availability?: Availability;
  queue?: QueueFigures;
  tokens?: TokenCheck;
  invariants?: { ok: boolean; output: string };
  reconciliation?: Reconciliation;
  dataLost?: number;
  /** How buyers' rounds ended, over all load processes. */
  outcomes?: Record<string, number>;
  loadProcessErrors?: string[];
  /** How instance B was started, when the scenario uses README's production command. */
  startCommand?: StartCommand;
  /** In-flight calls on the drained instance at SIGTERM, by outcome. */
  inFlightAtSigterm?: Record<string, number>;
  /** Wall time of the phases: start of servers and seeding, the load, the checks and cleanup. */
  phasesMs?: { setup: number; load: number; checks: number };
  /** 1-minute load average of the machine when the fault came and when the load stopped: others' work shows here. */
  loadAverage?: { atFault: number; atEnd: number };
  files: { attempts?: string; logs: string };
}

export interface SuiteReport {
  quick: boolean;
  startedAt: string;
  seconds: number;
  machine: { cpus: number; node: string };
  timing: Timing;
  /** Server environment given on top of the suite's (--env). */
  serverEnv: Record<string, string>;
  scenarios: ScenarioReport[];
}

const CONCERT = "faults-2027";
/**
 * The load processes stop by themselves this long after they start, whatever
 * the runner does: past warm-up, a slow restart (up to 90 s) and the tail.
 */
const HARD_STOP_MS = 240_000;

/** What to stop if the run is interrupted (Ctrl-C): the finally blocks do not run on a signal. */
const cleanups = new Set<() => void>();

/** Kills whatever the suite started and is still running: servers, Redis nodes, load processes, PostgreSQL. */
export function abortSuite(): void {
  for (const c of [...cleanups]) {
    try {
      c();
    } catch {
      /* best effort */
    }
  }
  cleanups.clear();
}
const SEATS_PER_DATE = 50;

export function scenarioNames(): string[] {
  return SCENARIOS.map((s) => s.name);
}

export async function runSuite(o: SuiteOptions): Promise<SuiteReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  const timing = o.quick ? QUICK : FULL;
  const wanted = o.scenarios?.length ? o.scenarios : scenarioNames();
  const unknown = wanted.filter((n) => !scenarioNames().includes(n));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")}; known: ${scenarioNames().join(", ")}`);
  mkdirSync(o.outDir, { recursive: true });
  const started = Date.now();
  const pg = await startPostgres();
  const stopPg = () => pg.stop();
  cleanups.add(stopPg);
  const report: SuiteReport = {
    quick: o.quick,
    startedAt: new Date(started).toISOString(),
    seconds: 0,
    machine: { cpus: cpus().length, node: process.version },
    timing,
    serverEnv: o.serverEnv ?? {},
    scenarios: [],
  };
  try {
    const pgc = postgresControl(pg);
    for (const s of SCENARIOS.filter((x) => wanted.includes(x.name))) {
      log(`\n== ${s.name}: ${s.title}`);
      const r = await runScenario(s, pg, pgc, timing, o.outDir, o.serverEnv ?? {}, log);
      report.scenarios.push(r);
      log(`   done in ${r.seconds.toFixed(1)} s${r.error ? ` (error: ${r.error})` : ""}`);
    }
  } finally {
    cleanups.delete(stopPg);
    try {
      pg.stop();
    } catch (err) {
      log(`could not stop PostgreSQL: ${(err as Error).message}`);
    }
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

async function runScenario(
  s: Scenario,
  pg: PostgresServer,
  pgc: PostgresControl,
  timing: Timing,
  outDir: string,
  serverEnv: Record<string, string>,
  log: (l: string) => void,
): Promise<ScenarioReport> {
  const t0 = Date.now();
  const runId = `${s.name.replace(/[^a-z0-9]/g, "")}${t0.toString(36)}`;
  const logs = join(outDir, `${s.name}-server-{A,B}.log`);
  const r: ScenarioReport = { name: s.name, title: s.title, seconds: 0, files: { logs } };
  const redis: RedisNode[] = [];
  const servers: ServerInstance[] = [];
  const workers: ChildProcess[] = [];
  let url: string | undefined;
  const kill = () => {
    for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
    for (const x of servers) x.kill();
    for (const n of redis) n.killNow();
  };
  cleanups.add(kill);
  try {
    // PostgreSQL must be up whatever the previous scenario did to it.
    url = await createDatabase(pg.adminUrl, `faults_${runId}`);
    for (let i = 0; i < 3; i++) redis.push(await startRedisNode());
    const buyers = timing.loadProcesses * timing.buyersPerProcess;
    const env: Record<string, string> = {
      DATABASE_URL: url,
      REDIS_URLS: redis.map((n) => n.url).join(","),
      QUEUE_REDIS_PREFIX: `faults:${runId}:`,
      // Half the buyers at a time: there is always a line, so places in it can be lost.
      QUEUE_MAX_ACTIVE: String(Math.max(1, Math.floor(buyers / 2))),
      QUEUE_ADMIT_PER_SECOND: "1000",
      QUEUE_ACTIVE_TTL: "10m",
      QUEUE_IDLE_TTL: "2m",
      HOLD_MAX_PER_USER: "50",
      HOLD_LOCK_TTL: `${timing.lockTtlMs}ms`,
      DB_POOL_MAX: "8",
      SEED_DEMO_CATALOG: "false",
      SHUTDOWN_GRACE: `${timing.shutdownGraceMs}ms`,
      ...serverEnv,
    };
    const readme = readmeStartCommand();
    if (s.launchB === "readme") {
      r.startCommand = readme;
      prepareOnce(readme, join(outDir, `${s.name}-server-B.log`), log);
    }
    // A first, alone: it applies the migrations.
    servers.push(await createServerInstance("A", env, join(outDir, `${s.name}-server-A.log`)));
    await servers[0].start();
    servers.push(
      await createServerInstance(
        "B",
        env,
        join(outDir, `${s.name}-server-B.log`),
        s.launchB === "readme" ? { kind: "command", argv: readme.argv } : { kind: "tsx" },
      ),
    );
    await servers[1].start();
    // Enough seats that no two buyers ever want the same one, however long the load runs:
    // every refusal is the fault's doing.
    const maxRounds = Math.ceil(HARD_STOP_MS / timing.thinkMs);
    const show = await seedShow(url, { concertId: CONCERT, dates: Math.ceil((maxRounds * buyers) / SEATS_PER_DATE), seatsPerDate: SEATS_PER_DATE });

    const hardStopAt = Date.now() + HARD_STOP_MS;
    const outputs: string[] = [];
    const reports: Promise<LoadReport | string>[] = [];
    const ready: Promise<void>[] = [];
    for (let k = 0; k < timing.loadProcesses; k++) {
      const output = join(outDir, `${s.name}-load-${k}.json`);
      outputs.push(output);
      const input: LoadInput = {
        ports: servers.map((x) => x.port),
        buyers: [k * timing.buyersPerProcess, (k + 1) * timing.buyersPerProcess],
        totalBuyers: buyers,
        runId,
        concertId: CONCERT,
        dates: show.dates,
        seatsPerDate: SEATS_PER_DATE,
        thinkMs: timing.thinkMs,
        callTimeoutMs: timing.callTimeoutMs,
        maxAttempts: 10,
        callBudgetMs: 20_000,
        pollMs: 250,
        activationTimeoutMs: 15_000,
        stopGraceMs: 3000,
        hardStopAt,
        output,
      };
      const w = fork(join(__dirname, "load", "buyer-worker.ts"), [], {
        cwd: ROOT,
        execArgv: ["--import", "tsx"],
        env: { ...process.env, FAULTS_LOAD_INPUT: JSON.stringify(input) },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      workers.push(w);
      ready.push(new Promise((resolve) => w.once("message", (m) => m === "ready" && resolve())));
      reports.push(
        new Promise((resolve) =>
          w.once("exit", (code, signal) => {
            if (code !== 0) return resolve(`load process ${k} exited with ${signal ?? code}`);
            try {
              resolve(JSON.parse(readFileSync(output, "utf8")) as LoadReport);
            } catch (err) {
              resolve(`load process ${k} left no report: ${(err as Error).message}`);
            }
          }),
        ),
      );
    }
    // Every load process calling (or one gone, which the report will show), bounded.
    let readyTimer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(ready), Promise.race(reports), new Promise((r) => (readyTimer = setTimeout(r, 60_000)))]);
    clearTimeout(readyTimer);
    const loadStart = Date.now();
    const setupMs = loadStart - t0;
    log(`   load: ${timing.loadProcesses} processes x ${timing.buyersPerProcess} buyers; fault in ${timing.warmupMs} ms`);
    await sleep(timing.warmupMs);

    const loadAtFault = loadavg()[0];
    let window: FaultWindow | undefined;
    let faultError: string | undefined;
    try {
      window = await s.inject({ servers, redis, pg: pgc, timing, log });
    } catch (err) {
      faultError = `fault injection failed: ${(err as Error).message}`;
      log(`   ${faultError}`);
    }
    await sleep(timing.tailMs);
    for (const w of workers) if (w.connected) w.send("stop");
    const loadEnd = Date.now();
    r.loadAverage = { atFault: Number(loadAtFault.toFixed(2)), atEnd: Number(loadavg()[0].toFixed(2)) };
    const killTimer = setTimeout(
      () => {
        for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
      },
      3000 + timing.callTimeoutMs + 15_000,
    );
    const settled = await Promise.all(reports);
    clearTimeout(killTimer);
    const attempts: Attempt[] = [];
    r.outcomes = {};
    r.loadProcessErrors = [];
    for (const x of settled) {
      if (typeof x === "string") {
        r.loadProcessErrors.push(x);
        continue;
      }
      attempts.push(...x.attempts);
      r.holdKeySent = x.holdKeySent;
      for (const [k, v] of Object.entries(x.outcomes)) r.outcomes[k] = (r.outcomes[k] ?? 0) + v;
    }
    r.files.attempts = outputs.join(", ");
    r.tokens = await crossCheckTokens(servers, buyers, timing);
    const restartFailed = Object.entries(window?.notes ?? {}).find(([k, v]) => k.endsWith(" restart") && String(v).startsWith("FAILED"));
    if (faultError) r.error = faultError;
    else if (restartFailed) r.error = `${restartFailed[0]} ${restartFailed[1]}`;
    if (window) {
      r.fault = { startOffsetMs: window.start - loadStart, durationMs: window.end - window.start, marks: window.marks, notes: window.notes };
      r.availability = availability(attempts, window, { instances: servers.length, recoveryWindowMs: timing.recoveryWindowMs, loadEnd });
      if (window.marks.sigtermAt) {
        const at = window.marks.sigtermAt;
        r.inFlightAtSigterm = {};
        for (const a of attempts.filter((x) => x.instance === 1 && x.start < at && x.end > at)) {
          const k = `${a.protocol} ${failureKey(a)}`;
          r.inFlightAtSigterm[k] = (r.inFlightAtSigterm[k] ?? 0) + 1;
        }
      }
    }
    r.calls = callFigures(attempts);
    r.queue = queueFigures(attempts);

    await Promise.all(servers.map((x) => x.stop(timing.shutdownGraceMs + 5000)));
    const check = await runInvariantChecker(url);
    r.invariants = { ok: check.ok, output: check.output.trim() };
    r.reconciliation = await reconcile(url, attempts);
    r.dataLost = dataLost(r.reconciliation);
    r.phasesMs = { setup: setupMs, load: loadEnd - loadStart, checks: Date.now() - loadEnd };
  } catch (err) {
    r.error = (err as Error).stack?.split("\n").slice(0, 3).join(" | ") ?? String(err);
    log(`   scenario failed: ${r.error}`);
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill("SIGKILL");
    await Promise.all(servers.map((x) => x.stop(2000).catch(() => undefined)));
    await Promise.all(redis.map((n) => n.stop().catch(() => undefined)));
    cleanups.delete(kill);
    r.seconds = (Date.now() - t0) / 1000;
  }
  return r;
}

const prepared = new Set<string>();

/** Runs what README runs before its start command (e.g. a build), once per suite run; throws if it fails. */
function prepareOnce(start: StartCommand, logFile: string, log: (l: string) => void): void {
  for (const argv of start.prepare) {
    const key = argv.join(" ");
    if (prepared.has(key)) continue;
    log(`   running README's "${key}" first`);
    const r = spawnSync(argv[0], argv.slice(1), { cwd: ROOT, encoding: "utf8", timeout: 300_000 });
    appendFileSync(logFile, `$ ${key}\n${r.stdout ?? ""}${r.stderr ?? ""}\n`);
    if (r.status !== 0) throw new Error(`README's "${key}" failed (${r.status ?? r.signal}); see ${logFile}`);
    prepared.add(key);
  }
}

/**
 * One waiting room for all instances: for some buyers, IssueToken on A and on
 * B must give the same token (asking again returns the same token), and each
 * instance must accept the other's token.
 */
async function crossCheckTokens(servers: ServerInstance[], buyers: number, timing: Timing): Promise<TokenCheck> {
  const caller = createGrpcCaller(servers.map((s) => s.port));
  const users = Math.min(buyers, 10);
  const check: TokenCheck = { users, split: 0, differentTokens: 0, unanswered: 0, servingAtEnd: [] };
  const o = { timeoutMs: timing.callTimeoutMs };
  /** Whether `instance` honours `token`: a live ticket, not NOT_FOUND and not EXPIRED right after issue. */
  const honours = (instance: number, token: string) =>
    caller.call(instance, QueueService.method.getQueueStatus, { token }, o).then(
      (v) => v.ticket?.status !== QueueStatus.EXPIRED,
      (err) => {
        if (describeFailure(err).code === "NOT_FOUND") return false;
        throw err;
      },
    );
  try {
    for (let i = 0; i < users; i++) {
      try {
        const userId = `fan-${i}`;
        const a = (await caller.call(0, QueueService.method.issueToken, { userId }, o)).ticket!.token;
        const b = (await caller.call(1, QueueService.method.issueToken, { userId }, o)).ticket!.token;
        if (a !== b) check.differentTokens++;
        if (!(await honours(1, a)) || !(await honours(0, b))) check.split++;
      } catch {
        check.unanswered++;
      }
    }
    // Both instances must still say SERVING at the end.
    for (let i = 0; i < servers.length; i++) {
      const h = await caller.call(i, Health.method.check, { service: "" }, o).catch(() => undefined);
      check.servingAtEnd.push(h?.status === ServingStatus.SERVING);
    }
  } finally {
    caller.close();
  }
  return check;
}
