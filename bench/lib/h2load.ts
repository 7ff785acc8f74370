/**
 * h2load (Debian `nghttp2-client`) as the load generator for bench/rpc.ts: a
 * C client that drives many streams per connection on little CPU, so the
 * server, not the generator, is what runs out of core. One run sends the same
 * request body for every call (`-d` file), to one path.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { percentile } from "./load";

export const H2LOAD = process.env.H2LOAD ?? "/usr/bin/h2load";
export const H2LOAD_INSTALL_HINT = "apt-get install -y nghttp2-client";

export interface H2loadRequest {
  url: string;
  /** Request body, sent as-is with every call (a gRPC frame, or Connect JSON). */
  body: Buffer;
  headers: Record<string, string>;
  /** HTTP/1.1 (`--h1`) instead of h2c with prior knowledge. */
  h1?: boolean;
  connections: number;
  /** Concurrent streams per connection (HTTP/2); for HTTP/1.1 keep 1 (no pipelining, as browsers do). */
  streams: number;
  durationMs: number;
}

export interface H2loadResult {
  /** Calls finished with a 2xx answer (for gRPC this is not yet grpc-status 0: see the caller's check). */
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status: { "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  seconds: number;
  perSecond: number;
  /** From h2load's per-request log (microsecond resolution), in ms. */
  p50: number;
  p99: number;
  /** CPU seconds h2load itself used (user + system). */
  loadCpuSeconds: number;
  /** h2load's text report, for diagnosis. */
  output: string;
}

/** gRPC's length-prefixed message: flag byte 0 (not compressed), 4-byte big-endian length, the protobuf. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };
export const CONNECT_JSON_HEADERS = { "content-type": "application/json", "connect-protocol-version": "1" };

/** Reaped children's CPU seconds of this process (cutime + cstime, /proc/self/stat). */
function reapedChildrenCpu(): number {
  const text = readFileSync("/proc/self/stat", "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / 100;
}

export function assertH2load(): void {
  if (!existsSync(H2LOAD)) throw new Error(`h2load not found at ${H2LOAD}. Install it with:\n  ${H2LOAD_INSTALL_HINT}`);
}

function parseReport(output: string) {
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  const finished = /finished in ([\d.]+)(ms|s),/.exec(output);
  if (!req || !codes || !finished) throw new Error(`could not read h2load's report:\n${output}`);
  return {
    succeeded: Number(req[4]),
    failed: Number(req[5]),
    errored: Number(req[6]),
    timeout: Number(req[7]),
    status: { "2xx": Number(codes[1]), "3xx": Number(codes[2]), "4xx": Number(codes[3]), "5xx": Number(codes[4]) },
    seconds: Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1),
  };
}

/** Latencies from `--log-file`: one line per request, "start µs \t status \t elapsed µs". */
function latencies(logFile: string): Float64Array {
  if (!existsSync(logFile)) return new Float64Array();
  const lines = readFileSync(logFile, "utf8").split("\n");
  const out = new Float64Array(lines.length);
  let n = 0;
  for (const line of lines) {
    const f = line.split("\t");
    if (f.length >= 3) out[n++] = Number(f[2]) / 1000;
  }
  return out.subarray(0, n).sort();
}

export async function runH2load(r: H2loadRequest): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "bench-h2load-"));
  try {
    const bodyFile = join(dir, "body");
    const logFile = join(dir, "log");
    writeFileSync(bodyFile, r.body);
    const args = [
      ...(r.h1 ? ["--h1"] : []),
      "-c",
      String(r.connections),
      "-m",
      String(r.streams),
      "-t",
      "1",
      "-D",
      `${Math.max(100, Math.round(r.durationMs))}ms`,
      "-d",
      bodyFile,
      "--log-file",
      logFile,
      ...Object.entries(r.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
      r.url,
    ];
    const cpu0 = reapedChildrenCpu();
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(H2LOAD, args, { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      child.stdout.on("data", (d) => (text += d));
      child.stderr.on("data", (d) => (text += d));
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`h2load exited with ${code}:\n${text}`))));
    });
    const loadCpuSeconds = reapedChildrenCpu() - cpu0;
    const report = parseReport(output);
    const sorted = latencies(logFile);
    return {
      ...report,
      perSecond: report.succeeded / report.seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      loadCpuSeconds,
      output,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
