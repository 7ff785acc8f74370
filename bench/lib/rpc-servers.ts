/**
 * The servers bench/rpc.ts measures, each its own process: the baselines of
 * rpc-baseline-server.ts, and boxoffice started with the production command
 * (`node --import tsx src/main.ts`). CPU and memory are read from /proc for
 * the process and its descendants (node:cluster workers included).
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect as connectH2 } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/harness/services";
import type { BaselineKind } from "./rpc-baseline-server";
import { treeCpuSeconds } from "./proc-cpu";
import { readMetrics } from "./server-process";

const ROOT = join(__dirname, "..", "..");
/**
 * Where boxoffice is started from: this checkout, or BENCH_SERVER_ROOT (a
 * `git worktree` of another commit, with node_modules) to measure that
 * commit's server with this commit's benchmark and baselines in one run.
 */
const SERVER_ROOT = process.env.BENCH_SERVER_ROOT ?? ROOT;

export interface RpcServer {
  label: string;
  port: number;
  pid: number;
  /** CPU seconds of the process and its descendants so far. */
  cpuSeconds(): number;
  /** Resident memory of the process and its descendants, bytes. */
  rssBytes(): number;
  /** Processes in the tree (1, or the primary plus its workers). */
  processCount(): number;
  /** Parsed /metrics of boxoffice (undefined for baselines). */
  metrics?: () => Promise<Map<string, number>>;
  /** The log file boxoffice writes its stdout to (boxoffice only). */
  logFile?: string;
  stop(): Promise<void>;
}

/** The pid and its descendants, from /proc/<pid>/task/<tid>/children. */
export function treePids(pid: number): number[] {
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const list = readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").trim();
        if (list) todo.push(...list.split(" ").map(Number));
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

function measured(label: string, port: number, child: ChildProcess) {
  const pid = child.pid!;
  return {
    label,
    port,
    pid,
    cpuSeconds: () => treeCpuSeconds(pid),
    rssBytes: () => treePids(pid).reduce((n, p) => n + rssOf(p), 0),
    processCount: () => treePids(pid).length,
  };
}

export async function startBaseline(kind: BaselineKind): Promise<RpcServer> {
  const child = fork(join(__dirname, "rpc-baseline-server.ts"), [kind], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`baseline ${kind} exited with ${code} before listening`)));
  });
  return { ...measured(kind, port, child), stop: () => stopChild(child) };
}

/** One gRPC call over h2c with exactly the bytes given; resolves grpc-status and the response message (unframed). */
export function probeGrpc(port: number, path: string, frame: Buffer): Promise<{ grpcStatus: string | undefined; grpcMessage?: string; message: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = connectH2(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let headers: Record<string, unknown> = {};
    req.on("response", (h) => (headers = h));
    req.on("trailers", (t) => (headers = { ...headers, ...t }));
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", reject);
    req.on("end", () => {
      session.close();
      const body = Buffer.concat(chunks);
      resolve({
        grpcStatus: headers["grpc-status"] as string | undefined,
        grpcMessage: headers["grpc-message"] as string | undefined,
        message: body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : Buffer.alloc(0),
      });
    });
    req.end(frame);
  });
}

/** One Connect unary call over HTTP/1.1 with exactly the body given. */
/** The fields of Connect JSON answers the bench looks at. */
export interface ConnectJson {
  status?: string;
  ticket?: { token?: string };
  concerts?: unknown[];
}

export async function probeConnect(port: number, path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; json: ConnectJson }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body, headers });
  const text = await res.text();
  let json: ConnectJson;
  try {
    json = JSON.parse(text) as ConnectJson;
  } catch {
    json = { status: `not JSON: ${text.slice(0, 200)}` };
  }
  return { status: res.status, json };
}

export interface BoxofficeOptions {
  label: string;
  env: Record<string, string>;
  logLevel: string;
}

/**
 * boxoffice as an operator runs it: `node --import tsx src/main.ts`, with
 * auth and call budgets off (the bench measures the RPC path, not the abuse
 * guards). Its log (one line per call at LOG_LEVEL=info) goes to a file, as a
 * container's stdout goes to its runtime.
 */
export async function startBoxoffice(o: BoxofficeOptions): Promise<RpcServer> {
  const port = await freePort();
  let metricsPort = await freePort();
  while (metricsPort === port) metricsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "bench-rpc-boxoffice-"));
  const logFile = join(dir, "server.log");
  const logFd = openSync(logFile, "a");
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: SERVER_ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      METRICS_HOST: "127.0.0.1",
      METRICS_PORT: String(metricsPort),
      AUTH_MODE: "none",
      RATE_LIMITS: "off",
      HTTP2_MAX_CONCURRENT_STREAMS: "10000",
      LOG_LEVEL: o.logLevel,
      // A token stays in line for the whole run without polling.
      QUEUE_IDLE_TTL: "1h",
      // The embedded database lives in this run's own directory, never the repository's .data.
      PGLITE_DATA_DIR: join(dir, "pglite"),
      ...o.env,
    },
    stdio: ["ignore", logFd, "inherit"],
  });
  closeSync(logFd);
  const exited = exitOf(child);
  const base = measured(o.label, port, child);
  const deadline = Date.now() + 90_000;
  // Health/Check with an empty HealthCheckRequest; SERVING is the message 08 01.
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${o.label}: server exited with ${child.exitCode} before serving; log: ${logFile}`);
    const r = await probeGrpc(port, "/grpc.health.v1.Health/Check", Buffer.alloc(5)).catch(() => undefined);
    if (r?.grpcStatus === "0" && r.message.equals(Buffer.from([0x08, 0x01]))) break;
    if (Date.now() > deadline) throw new Error(`${o.label}: not SERVING within 90 s; log: ${logFile}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    ...base,
    logFile,
    metrics: () => readMetrics(metricsPort),
    async stop() {
      await stopChild(child);
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls boxoffice counted for `procedure` in rpc_calls_total, by code. */
export function callsByCode(metrics: Map<string, number>, procedure: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [series, value] of metrics) {
    if (!series.startsWith("rpc_calls_total{") || !series.includes(`procedure="${procedure}"`)) continue;
    const code = /code="([^"]+)"/.exec(series)?.[1] ?? "?";
    out.set(code, (out.get(code) ?? 0) + value);
  }
  return out;
}
