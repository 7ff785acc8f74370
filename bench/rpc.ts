/**
 * The RPC ceiling: how many calls per second, and how much server CPU per
 * call, boxoffice's RPC stack costs beside bare servers measured in the same
 * run. Load comes from h2load (a C client, so the server's core runs out
 * first); every server is its own process, its CPU read from /proc.
 *
 * Baselines (Health/Check only, no boxoffice code): raw node:http2, a bare
 * @grpc/grpc-js Server (protobuf-es serialization), bare connect-node on h2c
 * and on HTTP/1.1. boxoffice: the production command on the embedded default
 * (PGlite, in-process queue) and, for WORKERS=N, on PostgreSQL + Redis
 * started here. Then server memory per open WatchQueueStatus stream, over
 * gRPC and over Connect on HTTP/1.1.
 *
 *   npm run bench:rpc
 *   npm run bench:rpc -- --duration 10s --rounds 3 --connections 4 --streams 16 --workers 1,2
 *   npm run bench:rpc -- --workers none          (no PostgreSQL/Redis part)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import {
  GetQueueStatusRequestSchema,
  GetQueueStatusResponseSchema,
  IssueTokenRequestSchema,
  IssueTokenResponseSchema,
} from "../gen/boxoffice/queue/v1/queue_service_pb";
import { HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb";
import { parseDuration } from "../src/config";
import { createDatabase, startPostgres, startRedis, type PostgresServer, type RedisServer } from "../test/harness/services";
import { assertH2load, CONNECT_JSON_HEADERS, GRPC_HEADERS, grpcFrame, runH2load, type H2loadResult } from "./lib/h2load";
import { fmt, table } from "./lib/load";
import { BASELINE_KINDS } from "./lib/rpc-baseline-server";
import { callsByCode, type ConnectJson, probeConnect, probeGrpc, startBaseline, startBoxoffice, type RpcServer } from "./lib/rpc-servers";
import { measureStreamMemory, type StreamMemory } from "./lib/rpc-streams";

const USAGE = `npm run bench:rpc -- [--duration 4s] [--rounds 3] [--connections 4] [--streams 16]
  [--workers 1,2 | none] [--watch 1000] [--log-level info] [--issue-runs 4]`;

const { values: flags } = parseArgs({
  options: {
    duration: { type: "string", default: "4s" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "4" },
    streams: { type: "string", default: "16" },
    workers: { type: "string", default: "1,2" },
    watch: { type: "string", default: "1000" },
    "log-level": { type: "string", default: "info" },
    "issue-runs": { type: "string", default: "4" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number ≥ 1, not "${text}"\n${USAGE}`);
  return n;
}

const DURATION_MS = parseDuration(flags.duration);
const ROUNDS = positive("rounds", flags.rounds);
const CONNECTIONS = positive("connections", flags.connections);
const STREAMS = positive("streams", flags.streams);
const WATCH = Number(flags.watch);
const ISSUE_RUNS = positive("issue-runs", flags["issue-runs"]);
const LOG_LEVEL = flags["log-level"];
const WORKERS = flags.workers === "none" || flags.workers === "" ? [] : flags.workers.split(",").map((w) => positive("workers", w.trim()));
const WARMUP_MS = 1000;

const HEALTH = "/grpc.health.v1.Health/Check";
const ISSUE = "/boxoffice.queue.v1.QueueService/IssueToken";
const STATUS = "/boxoffice.queue.v1.QueueService/GetQueueStatus";
const LIST = "/boxoffice.concert.v1.ConcertService/ListConcerts";

type Protocol = "gRPC h2c" | "Connect JSON h1";

interface Scenario {
  name: string;
  server: string;
  protocol: Protocol;
  path: string;
  /** One body per h2load run (IssueToken: one user per run). */
  bodies(round: string): Promise<Buffer[]>;
  /** Asserts one call with a body like those is a real success (grpc-status 0 / HTTP 200 and the expected answer). */
  check(round: string): Promise<void>;
}

interface Measured {
  round: number;
  scenario: string;
  server: string;
  protocol: Protocol;
  /** Calls answered OK (h2load's 2xx, less what the server itself counted as errors). */
  calls: number;
  /** gRPC errors the server counted (h2load sees them as HTTP 200). */
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
  serverCpuPercent: number;
  cpuMsPerCall: number;
  loadCpuPercent: number;
  /** boxoffice's own count of the calls by code (rpc_calls_total), when it has one. */
  serverCounted?: Record<string, number>;
  /** IssueToken: tickets added to the line during the measurement (queue_waiting + queue_active). */
  newUsers?: number;
  processes: number;
}

const grpcBody = <T extends DescMessage>(schema: T, init: MessageInitShape<T>) => grpcFrame(toBinary(schema, create(schema, init)));
const jsonBody = (v: unknown) => Buffer.from(JSON.stringify(v));

function expectGrpcOk(what: string, r: Awaited<ReturnType<typeof probeGrpc>>): Buffer {
  if (r.grpcStatus !== "0") throw new Error(`${what}: grpc-status ${r.grpcStatus} (${decodeURIComponent(r.grpcMessage ?? "")})`);
  return r.message;
}

function expectConnectOk(what: string, r: Awaited<ReturnType<typeof probeConnect>>): ConnectJson {
  if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function issueGrpcToken(server: RpcServer, userId: string): Promise<string> {
  const msg = expectGrpcOk("IssueToken", await probeGrpc(server.port, ISSUE, grpcBody(IssueTokenRequestSchema, { userId })));
  return fromBinary(IssueTokenResponseSchema, msg).ticket!.token;
}

/** The gRPC and Connect scenarios against one boxoffice server. */
function boxofficeScenarios(key: string, server: () => RpcServer, which: Set<string>): Scenario[] {
  const s = server;
  // User ids must match the proto's pattern: letters, digits, "_.-".
  const user = key.replace(/[^A-Za-z0-9_.-]/g, "-");
  const all: Scenario[] = [
    {
      name: "Health/Check",
      server: key,
      protocol: "gRPC h2c",
      path: HEALTH,
      bodies: async () => [grpcBody(HealthCheckRequestSchema, {})],
      check: async () => void expectGrpcOk("Health/Check", await probeGrpc(s().port, HEALTH, grpcBody(HealthCheckRequestSchema, {}))),
    },
    {
      name: "IssueToken",
      server: key,
      protocol: "gRPC h2c",
      path: ISSUE,
      bodies: async (round) => Array.from({ length: ISSUE_RUNS }, (_, k) => grpcBody(IssueTokenRequestSchema, { userId: `rpc-${user}-g-${round}-${k}` })),
      check: async (round) => void (await issueGrpcToken(s(), `rpc-${user}-g-${round}-probe`)),
    },
    {
      name: "GetQueueStatus",
      server: key,
      protocol: "gRPC h2c",
      path: STATUS,
      bodies: async (round) => [grpcBody(GetQueueStatusRequestSchema, { token: await issueGrpcToken(s(), `rpc-${user}-status-${round}`) })],
      check: async (round) => {
        const token = await issueGrpcToken(s(), `rpc-${user}-status-${round}-probe`);
        const msg = expectGrpcOk("GetQueueStatus", await probeGrpc(s().port, STATUS, grpcBody(GetQueueStatusRequestSchema, { token })));
        if (!fromBinary(GetQueueStatusResponseSchema, msg).ticket) throw new Error("GetQueueStatus answered without a ticket");
      },
    },
    {
      name: "Health/Check",
      server: key,
      protocol: "Connect JSON h1",
      path: HEALTH,
      bodies: async () => [jsonBody({})],
      check: async () => {
        const json = expectConnectOk("Health/Check", await probeConnect(s().port, HEALTH, jsonBody({}), CONNECT_JSON_HEADERS));
        if (json.status !== "SERVING") throw new Error(`Health/Check over Connect: ${JSON.stringify(json)}`);
      },
    },
    {
      name: "IssueToken",
      server: key,
      protocol: "Connect JSON h1",
      path: ISSUE,
      bodies: async (round) => Array.from({ length: ISSUE_RUNS }, (_, k) => jsonBody({ userId: `rpc-${user}-c-${round}-${k}` })),
      check: async (round) => {
        const json = expectConnectOk(
          "IssueToken",
          await probeConnect(s().port, ISSUE, jsonBody({ userId: `rpc-${user}-c-${round}-probe` }), CONNECT_JSON_HEADERS),
        );
        if (!json.ticket?.token) throw new Error(`IssueToken over Connect: ${JSON.stringify(json)}`);
      },
    },
    {
      name: "ListConcerts",
      server: key,
      protocol: "Connect JSON h1",
      path: LIST,
      bodies: async () => [jsonBody({})],
      check: async () => {
        const json = expectConnectOk("ListConcerts", await probeConnect(s().port, LIST, jsonBody({}), CONNECT_JSON_HEADERS));
        if (!Array.isArray(json.concerts) || json.concerts.length === 0)
          throw new Error(`ListConcerts returned no concerts: ${JSON.stringify(json).slice(0, 200)}`);
      },
    },
  ];
  return all.filter((x) => which.has(`${x.protocol}:${x.name}`));
}

function baselineScenario(kind: (typeof BASELINE_KINDS)[number], server: () => RpcServer): Scenario {
  const h1 = kind === "connect-h1";
  return {
    name: "Health/Check",
    server: kind,
    protocol: h1 ? "Connect JSON h1" : "gRPC h2c",
    path: HEALTH,
    bodies: async () => [h1 ? jsonBody({}) : grpcBody(HealthCheckRequestSchema, {})],
    check: async () => {
      if (h1) {
        const json = expectConnectOk(kind, await probeConnect(server().port, HEALTH, jsonBody({}), CONNECT_JSON_HEADERS));
        if (json.status !== "SERVING") throw new Error(`${kind}: ${JSON.stringify(json)}`);
      } else {
        const msg = expectGrpcOk(kind, await probeGrpc(server().port, HEALTH, grpcBody(HealthCheckRequestSchema, {})));
        if (!msg.equals(Buffer.from([0x08, 0x01]))) throw new Error(`${kind}: not SERVING (${msg.toString("hex")})`);
      }
    },
  };
}

const inLine = (m: Map<string, number>) => (m.get("queue_waiting") ?? NaN) + (m.get("queue_active") ?? NaN);

/** h2load against one scenario: one run per body, durations split evenly. */
async function measure(
  sc: Scenario,
  server: RpcServer,
  round: string,
  durationMs: number,
  warmup = false,
): Promise<Omit<Measured, "round"> & { raw: H2loadResult[] }> {
  const bodies = await sc.bodies(round);
  const h1 = sc.protocol === "Connect JSON h1";
  const m0 = server.metrics ? await server.metrics() : undefined;
  const before = m0 && callsByCode(m0, sc.path);
  const cpu0 = server.cpuSeconds();
  const raw: H2loadResult[] = [];
  for (const body of bodies) {
    raw.push(
      await runH2load({
        url: `http://127.0.0.1:${server.port}${sc.path}`,
        body,
        headers: h1 ? CONNECT_JSON_HEADERS : GRPC_HEADERS,
        h1,
        // HTTP/1.1 without pipelining: as many connections as HTTP/2 has streams in flight.
        connections: h1 ? CONNECTIONS * STREAMS : CONNECTIONS,
        streams: h1 ? 1 : STREAMS,
        durationMs: durationMs / bodies.length,
      }),
    );
  }
  const cpu = server.cpuSeconds() - cpu0;
  const calls = raw.reduce((n, r) => n + r.succeeded, 0);
  const seconds = raw.reduce((n, r) => n + r.seconds, 0);
  const bad = raw.reduce((n, r) => n + r.failed + r.errored + r.timeout + r.status["3xx"] + r.status["4xx"] + r.status["5xx"], 0);
  // A warm-up only primes JIT and pools: on a busy machine its first calls may not even finish in time.
  if (!warmup && calls === 0) console.log(`warning: ${sc.server} ${sc.protocol} ${sc.name}: no call finished within ${durationMs} ms`);
  if (!warmup && bad > 0) throw new Error(`${sc.server} ${sc.protocol} ${sc.name}: ${calls} succeeded, ${bad} failed\n${raw.map((r) => r.output).join("\n")}`);
  let serverCounted: Record<string, number> | undefined;
  let newUsers: number | undefined;
  let notOkCalls = 0;
  if (before && server.metrics) {
    const m1 = await server.metrics();
    const after = callsByCode(m1, sc.path);
    if (sc.path === ISSUE) newUsers = inLine(m1) - inLine(m0!);
    serverCounted = {};
    for (const [code, n] of after) if (n - (before.get(code) ?? 0) > 0) serverCounted[code] = n - (before.get(code) ?? 0);
    const notOk = Object.entries(serverCounted).filter(([code]) => code !== "OK");
    // h2load sees a gRPC error as HTTP 200; the server's own count by code is where it shows.
    // Reported, not fatal: under load a server may rightly answer UNAVAILABLE (a Redis command timing out).
    notOkCalls = notOk.reduce((n, [, v]) => n + v, 0);
    if (notOkCalls && !warmup) console.log(`warning: ${sc.server} ${sc.protocol} ${sc.name}: the server answered ${JSON.stringify(serverCounted)}`);
  }
  const okCalls = calls - notOkCalls;
  // call-weighted across runs; a run in which no call finished has no latency to weigh
  const sorted = (k: "p50" | "p99") => raw.reduce((m, r) => m + (r.succeeded ? r[k] * r.succeeded : 0), 0) / calls;
  return {
    scenario: `${sc.protocol} ${sc.name}`,
    server: sc.server,
    protocol: sc.protocol,
    calls: okCalls,
    errors: notOkCalls,
    perSecond: okCalls / seconds,
    p50: sorted("p50"),
    p99: sorted("p99"),
    serverCpuPercent: (100 * cpu) / seconds,
    cpuMsPerCall: (1000 * cpu) / calls, // every answered call cost CPU, errors included
    loadCpuPercent: (100 * raw.reduce((n, r) => n + r.loadCpuSeconds, 0)) / seconds,
    serverCounted,
    newUsers,
    processes: server.processCount(),
    raw,
  };
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function ratios(rows: Measured[]): { ratio: string; value: number; detail: string }[] {
  const find = (server: string, scenario: string) => rows.find((r) => r.server === server && r.scenario === scenario);
  const out: { ratio: string; value: number; detail: string }[] = [];
  const add = (ratio: string, a?: Measured, b?: Measured) => {
    if (!a || !b) return;
    out.push({
      ratio,
      value: a.perSecond / b.perSecond,
      detail: `${fmt(a.perSecond)} vs ${fmt(b.perSecond)} calls/s; CPU ${fmt(a.cpuMsPerCall)} vs ${fmt(b.cpuMsPerCall)} ms/call`,
    });
  };
  const g = "gRPC h2c Health/Check";
  const c = "Connect JSON h1 Health/Check";
  add("boxoffice ÷ bare grpc-js (gRPC Health/Check)", find("boxoffice", g), find("grpc-js", g));
  add("boxoffice ÷ bare connect-node h2c (gRPC Health/Check)", find("boxoffice", g), find("connect-h2c", g));
  add("boxoffice ÷ raw node:http2 (gRPC Health/Check)", find("boxoffice", g), find("raw-h2", g));
  add("boxoffice ÷ bare connect-node HTTP/1.1 (Connect Health/Check)", find("boxoffice", c), find("connect-h1", c));
  add("bare grpc-js ÷ bare connect-node h2c (gRPC Health/Check)", find("grpc-js", g), find("connect-h2c", g));
  add("ListConcerts ÷ Health/Check over Connect (boxoffice)", find("boxoffice", "Connect JSON h1 ListConcerts"), find("boxoffice", c));
  add("IssueToken ÷ Health/Check over gRPC (boxoffice)", find("boxoffice", "gRPC h2c IssueToken"), find("boxoffice", g));
  add("GetQueueStatus ÷ Health/Check over gRPC (boxoffice)", find("boxoffice", "gRPC h2c GetQueueStatus"), find("boxoffice", g));
  if (WORKERS.length > 1) {
    const first = `workers=${WORKERS[0]}`;
    for (const w of WORKERS.slice(1))
      for (const r of rows.filter((x) => x.server === `workers=${w}`)) add(`WORKERS=${w} ÷ WORKERS=${WORKERS[0]} (${r.scenario})`, r, find(first, r.scenario));
  }
  return out;
}

function printRound(round: number, rows: Measured[]): void {
  console.log(`\n-- round ${round} of ${ROUNDS} --`);
  console.log(
    table(
      rows.map((r) => ({
        server: r.server,
        call: r.scenario,
        "calls/s": r.perSecond,
        "p50 ms": r.p50,
        "p99 ms": r.p99,
        "server CPU %": r.serverCpuPercent,
        "CPU ms/call": r.cpuMsPerCall,
        "h2load CPU %": r.loadCpuPercent,
        "server counted": r.serverCounted
          ? Object.entries(r.serverCounted)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")
          : "-",
        "new users": r.newUsers ?? "",
        errors: r.errors,
        procs: r.processes,
      })),
    ),
  );
  console.log(table(ratios(rows).map((x) => ({ ratio: x.ratio, value: x.value.toFixed(2), detail: x.detail }))));
}

async function main() {
  if (flags.help) return console.log(USAGE);
  assertH2load();
  const started = Date.now();
  console.log(
    `RPC ceiling: ${ROUNDS} rounds of ${DURATION_MS / 1000} s per call, h2load ${CONNECTIONS} connections x ${STREAMS} streams ` +
      `(HTTP/1.1: ${CONNECTIONS * STREAMS} connections), LOG_LEVEL=${LOG_LEVEL}, WORKERS ${WORKERS.join(",") || "not measured"}`,
  );
  const servers = new Map<string, RpcServer>();
  let pg: PostgresServer | undefined;
  let redis: RedisServer | undefined;
  const all: Measured[] = [];
  const streams: StreamMemory[] = [];
  try {
    const phase = (what: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${what}`);
    for (const kind of BASELINE_KINDS) servers.set(kind, await startBaseline(kind));
    servers.set("boxoffice", await startBoxoffice({ label: "boxoffice", env: {}, logLevel: LOG_LEVEL }));
    const get = (key: string) => () => servers.get(key)!;
    const scenarios: Scenario[] = [
      ...BASELINE_KINDS.map((k) => baselineScenario(k, get(k))),
      ...boxofficeScenarios(
        "boxoffice",
        get("boxoffice"),
        new Set([
          "gRPC h2c:Health/Check",
          "gRPC h2c:IssueToken",
          "gRPC h2c:GetQueueStatus",
          "Connect JSON h1:Health/Check",
          "Connect JSON h1:IssueToken",
          "Connect JSON h1:ListConcerts",
        ]),
      ),
    ];
    phase("baselines and boxoffice (embedded) serving");
    if (WORKERS.length) {
      [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
      for (const w of WORKERS) {
        const key = `workers=${w}`;
        const url = await createDatabase(pg.adminUrl, `rpc_workers_${w}_${Date.now()}`);
        servers.set(
          key,
          await startBoxoffice({
            label: key,
            logLevel: LOG_LEVEL,
            env: { WORKERS: String(w), DATABASE_URL: url, REDIS_URLS: redis.url, QUEUE_REDIS_PREFIX: `rpc:${key}:`, SEED_DEMO_CATALOG: "true" },
          }),
        );
        const procs = servers.get(key)!.processCount();
        if (w > 1 && procs < w)
          console.log(`note: ${key} runs as ${procs} process(es): this build does not start workers, so WORKERS=${w} measures one process`);
        scenarios.push(...boxofficeScenarios(key, get(key), new Set(["gRPC h2c:Health/Check", "gRPC h2c:IssueToken", "Connect JSON h1:ListConcerts"])));
      }
    }

    phase("all servers serving");
    // Every request shape is proven a real success before it is measured; then one unmeasured warm-up (JIT, pools).
    for (const sc of scenarios) {
      await sc.check("warmup");
      await measure(sc, servers.get(sc.server)!, "warmup", WARMUP_MS, true);
    }
    console.log(`all ${scenarios.length} calls checked (grpc-status 0 / HTTP 200 with the expected answer) and warmed up`);

    for (let round = 1; round <= ROUNDS; round++) {
      const rows: Measured[] = [];
      for (const sc of scenarios) {
        await sc.check(`r${round}`);
        const { raw: _raw, ...m } = await measure(sc, servers.get(sc.server)!, `r${round}`, DURATION_MS);
        rows.push({ round, ...m });
      }
      printRound(round, rows);
      all.push(...rows);
    }

    // Memory per stream on fresh embedded servers, so one stack's heap growth is not counted for the other.
    if (WATCH > 0) {
      phase("memory per stream");
      for (const stack of ["grpc", "connect-h1"] as const) {
        const server = await startBoxoffice({ label: `streams-${stack}`, env: { QUEUE_MAX_ACTIVE: "1" }, logLevel: LOG_LEVEL });
        try {
          streams.push(await measureStreamMemory(server, stack, WATCH));
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    for (const s of servers.values()) await s.stop().catch((err) => console.error(`stopping ${s.label}: ${err}`));
    await redis?.stop();
    pg?.stop();
  }

  console.log(`\n== median of ${ROUNDS} rounds ==`);
  const keys = [...new Set(all.map((r) => `${r.server}|${r.scenario}`))];
  const med: Measured[] = keys.map((k) => {
    const rs = all.filter((r) => `${r.server}|${r.scenario}` === k);
    return {
      ...rs[0],
      round: 0,
      calls: median(rs.map((r) => r.calls)),
      perSecond: median(rs.map((r) => r.perSecond)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      serverCpuPercent: median(rs.map((r) => r.serverCpuPercent)),
      cpuMsPerCall: median(rs.map((r) => r.cpuMsPerCall)),
      loadCpuPercent: median(rs.map((r) => r.loadCpuPercent)),
      serverCounted: undefined,
    };
  });
  console.log(
    table(
      med.map((r) => ({
        server: r.server,
        call: r.scenario,
        "calls/s": r.perSecond,
        "p50 ms": r.p50,
        "p99 ms": r.p99,
        "CPU ms/call": r.cpuMsPerCall,
        procs: r.processes,
      })),
    ),
  );
  const perRound = Array.from({ length: ROUNDS }, (_, i) => ratios(all.filter((r) => r.round === i + 1)));
  const summary = perRound[0].map((x, i) => ({
    ratio: x.ratio,
    median: median(perRound.map((p) => p[i]?.value)),
    rounds: perRound.map((p) => p[i]?.value.toFixed(2)).join(" / "),
  }));
  console.log(table(summary.map((s) => ({ ratio: s.ratio, median: s.median.toFixed(2), "each round": s.rounds }))));
  if (streams.length) {
    console.log(`\nmemory per open WatchQueueStatus stream (fresh embedded server each, ${WATCH} streams):`);
    console.log(
      table(
        streams.map((s) => ({
          stack: s.stack === "grpc" ? "gRPC (grpc-js client, 10 connections)" : "Connect JSON over HTTP/1.1 (1 connection each)",
          streams: s.streams,
          "server reports open": s.serverReports,
          "opened in s": s.openSeconds,
          "RSS KiB/stream": s.rssBytesPerStream / 1024,
          "heap KiB/stream": s.heapBytesPerStream / 1024,
        })),
      ),
    );
  }
  const dir = join(__dirname, "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `rpc-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { flags: { DURATION_MS, ROUNDS, CONNECTIONS, STREAMS, WORKERS, WATCH, LOG_LEVEL, ISSUE_RUNS }, rounds: all, medians: med, ratios: summary, streams },
      null,
      2,
    ),
  );
  console.log(`\nJSON: ${file}  (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
