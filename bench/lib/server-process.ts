import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { grpcJsClient, unary } from "../../test/e2e/grpc-js";
import { freePort } from "../../test/harness/services";

const ROOT = join(__dirname, "..", "..");

export interface ServerProcess {
  port: number;
  /** The server's loopback metrics listener (METRICS_PORT), where metrics() reads. */
  metricsPort: number;
  pid: number;
  child: ChildProcess;
  /** Parsed /metrics values by exact series name (e.g. "process_resident_memory_bytes"). */
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<number | null>;
}

export interface ServerProcessOptions {
  /**
   * Extra node flags for the server process (e.g. `--cpu-prof`): tsx hands
   * flags before the script to node. (NODE_OPTIONS refuses --cpu-prof.)
   */
  nodeFlags?: string[];
}

/** The real server as its own process (`tsx src/main.ts`), as an operator runs it. */
export async function startServerProcess(env: Record<string, string>, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const port = await freePort();
  let metricsPort = await freePort();
  while (metricsPort === port) metricsPort = await freePort();
  const child = spawn(join(ROOT, "node_modules", ".bin", "tsx"), [...(options.nodeFlags ?? []), "src/main.ts"], {
    cwd: ROOT,
    // Benchmarks measure the booking path, not the abuse guards: no auth, no call budgets.
    // Metrics come from the server's own loopback metrics port, as an operator's Prometheus reads them.
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      HOST: "127.0.0.1",
      PORT: String(port),
      AUTH_MODE: "none",
      RATE_LIMITS: "off",
      // A bench multiplexes thousands of simulated users' streams over a few
      // connections; real users each bring their own connection.
      HTTP2_MAX_CONCURRENT_STREAMS: "10000",
      ...env,
      METRICS_HOST: "127.0.0.1",
      METRICS_PORT: String(metricsPort),
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const client = grpcJsClient(port);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before serving`);
    try {
      const res = await unary(client, Health.method.check, { service: "" });
      if (res.message.status === Status.SERVING) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error("server did not become SERVING within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  client.close();
  return {
    port,
    metricsPort,
    pid: child.pid!,
    child,
    metrics: () => readMetrics(metricsPort),
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A server's /metrics on its loopback metrics port, by exact series name (e.g. "process_resident_memory_bytes"). */
export async function readMetrics(metricsPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
