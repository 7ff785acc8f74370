/**
 * The pieces a fault scenario breaks, each with the controls it needs:
 * PostgreSQL stopped and started again on its data directory and port,
 * redis-server nodes killed and restarted empty on their port, and server
 * processes killed, frozen, or drained, on fixed ports so a restarted
 * instance is where its clients look for it. Loopback only.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { grpcJsClient, unary } from "../../test/e2e/grpc-js";
import { freePort, MissingBinaryError, postgresBinDir, type PostgresServer } from "../../test/harness/services";

export const ROOT = join(__dirname, "..", "..");
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Ports this run has handed out. freePort() only says nothing listens right
 * now: a server's fixed port is free between its kill and its restart, and a
 * port picked but not yet listened on may be picked again.
 */
const taken = new Set<number>();

/** A free port no other piece of this run has been given. */
export async function pickPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error("no free port found in 50 tries");
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Every live descendant of `pid` (Linux /proc), children before grandchildren. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const todo = [pid];
  while (todo.length && out.length < 1000) {
    const p = todo.shift()!;
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const list = readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").trim();
        if (list) {
          for (const c of list.split(" ").map(Number)) {
            out.push(c);
            todo.push(c);
          }
        }
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The process among `pids` that listens on 127.0.0.1:port (by the socket's inode in /proc/net/tcp). */
export function listenerPid(port: number, pids: number[]): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    try {
      for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length > 9 && f[1].endsWith(`:${hex}`) && f[3] === "0A") inodes.add(f[9]);
      }
    } catch {
      /* no such table */
    }
  }
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) return pid;
      }
    } catch {
      /* gone */
    }
  }
  return undefined;
}

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}

export function alive(pid: number): boolean {
  try {
    // A zombie still answers signal 0; it is gone for our purposes.
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- PostgreSQL

/** PostgreSQL refuses to run as root: its tools run as the `postgres` user then (as the harness does). */
function asServiceUser(cmd: string, args: string[]): { ok: boolean; output: string } {
  const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const r =
    process.getuid?.() === 0
      ? spawnSync("su", ["postgres", "-s", "/bin/sh", "-c", quoted], { encoding: "utf8", timeout: 90_000 })
      : spawnSync("sh", ["-c", quoted], { encoding: "utf8", timeout: 90_000 });
  return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

export interface PostgresControl {
  /** `pg_ctl stop -m fast`: clients are disconnected, open transactions roll back. */
  stopFast(): void;
  /** `pg_ctl start` on the same data directory with the same options (port included). */
  start(): void;
}

/** Stop/start for a server from the harness's startPostgres(), reusing the options it was started with. */
export function postgresControl(pg: PostgresServer): PostgresControl {
  const pgCtl = join(postgresBinDir(), "pg_ctl");
  // postmaster.opts: the binary, then every argument quoted; everything but -D <dir> goes back in -o.
  const args = [...readFileSync(join(pg.dataDir, "postmaster.opts"), "utf8").matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const d = args.indexOf("-D");
  if (d >= 0) args.splice(d, 2);
  const options = args.join(" ");
  const log = join(dirname(pg.dataDir), "server.log");
  return {
    stopFast() {
      const r = asServiceUser(pgCtl, ["-D", pg.dataDir, "-m", "fast", "-w", "-t", "60", "stop"]);
      if (!r.ok) throw new Error(`pg_ctl stop failed: ${r.output}`);
    },
    start() {
      const r = asServiceUser(pgCtl, ["-D", pg.dataDir, "-o", options, "-l", log, "-w", "-t", "60", "start"]);
      if (!r.ok) throw new Error(`pg_ctl start failed: ${r.output}`);
    },
  };
}

// --------------------------------------------------------------------- Redis

export interface RedisNode {
  port: number;
  url: string;
  pid(): number | undefined;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGKILL without waiting (interrupted run). */
  killNow(): void;
  /** A new, empty redis-server on the same port (nothing is persisted). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

function redisBinary(): string {
  const r = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  if (existsSync("/usr/bin/redis-server")) return "/usr/bin/redis-server";
  throw new MissingBinaryError("redis-server");
}

/** A redis-server on a port of its own that can be killed and started again there, empty. */
export async function startRedisNode(): Promise<RedisNode> {
  const binary = redisBinary();
  const port = await pickPort();
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-faults-redis-"));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const node: RedisNode = {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    async start() {
      const c = spawn(
        binary,
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"],
        {
          stdio: "ignore",
        },
      );
      child = c;
      exited = new Promise((resolve) => c.once("exit", () => resolve()));
      const deadline = Date.now() + 10_000;
      while (!(await accepts(port, 200))) {
        if (Date.now() > deadline || c.exitCode !== null) throw new Error(`redis-server on port ${port} did not start`);
        await sleep(50);
      }
    },
    async kill() {
      node.killNow();
      await exited;
    },
    killNow() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
    async stop() {
      await node.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await node.start();
  return node;
}

// ------------------------------------------------------------ server process

export type Launch = { kind: "tsx" } | { kind: "command"; argv: string[] };

export interface ServerInstance {
  name: string;
  port: number;
  launch: Launch;
  /** The process we started (npm for a command launch), while it runs. */
  child(): ChildProcess | undefined;
  /** The process that serves the port: the one to kill, freeze or watch (npm's grandchild on a command launch). */
  serverPid(): number | undefined;
  /** Starts the process and waits until Health/Check answers SERVING. */
  start(): Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves with how the current process ended. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL for the whole tree after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL for the whole tree at once (interrupted run). */
  kill(): void;
}

/**
 * The real server as its own process, configured as bench/lib/server-process.ts
 * does (no auth, no call budgets, loopback), but on a fixed port so it can be
 * started again where its clients call, and started either as `tsx src/main.ts`
 * or as an operator's command (README's `npm start`).
 */
export async function createServerInstance(
  name: string,
  env: Record<string, string>,
  logFile: string,
  launch: Launch = { kind: "tsx" },
): Promise<ServerInstance> {
  const port = await pickPort();
  let child: ChildProcess | undefined;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  /** The process tree as of the last start: what stop() must leave dead even if the top process exited first. */
  let known: number[] = [];
  const instance: ServerInstance = {
    name,
    port,
    launch,
    child: () => (running() ? child : undefined),
    async start() {
      const metricsPort = await pickPort();
      const fd = openSync(logFile, "a");
      // `node --import tsx`: the process we start is the server itself, so a kill -9 hits the
      // server and not a launcher that would leave it running (tsx's CLI is a parent process).
      const [cmd, ...args] = launch.kind === "tsx" ? [process.execPath, "--import", "tsx", "src/main.ts"] : launch.argv;
      const c = spawn(cmd, args, {
        cwd: ROOT,
        env: {
          ...process.env,
          LOG_LEVEL: "warn",
          HOST: "127.0.0.1",
          AUTH_MODE: "none",
          RATE_LIMITS: "off",
          HTTP2_MAX_CONCURRENT_STREAMS: "10000",
          ...env,
          PORT: String(port),
          METRICS_HOST: "127.0.0.1",
          METRICS_PORT: String(metricsPort),
        },
        stdio: ["ignore", fd, fd],
      });
      closeSync(fd);
      child = c;
      exited = new Promise((resolve) => c.once("exit", (code, signal) => resolve({ code, signal })));
      const client = grpcJsClient(port);
      try {
        // Seconds normally; a minute and more when the machine is loaded (tsx compiles at start).
        const deadline = Date.now() + 90_000;
        for (;;) {
          if (c.exitCode !== null || c.signalCode !== null)
            throw new Error(`server ${name} exited (${c.exitCode ?? c.signalCode}) before serving; see ${logFile}`);
          const serving = await unary(client, Health.method.check, { service: "" }).then(
            (r) => r.message.status === Status.SERVING,
            () => false,
          );
          if (serving) break;
          if (Date.now() > deadline) throw new Error(`server ${name} did not become SERVING within 90 s; see ${logFile}`);
          await sleep(150);
        }
        known = [c.pid!, ...descendants(c.pid!)];
      } finally {
        client.close();
      }
    },
    serverPid() {
      if (!running()) return undefined;
      if (launch.kind === "tsx") return child!.pid;
      // The command may be the server itself (node dist/src/main.js) or start it (npm).
      return listenerPid(port, [child!.pid!, ...descendants(child!.pid!)]);
    },
    signal(sig) {
      if (running()) child!.kill(sig);
    },
    exited: () => exited,
    kill() {
      const tree = running() ? [child!.pid!, ...descendants(child!.pid!)] : known;
      for (const p of tree) if (alive(p)) process.kill(p, "SIGKILL");
    },
    async stop(graceMs = 15_000) {
      const tree = running() ? [child!.pid!, ...descendants(child!.pid!)] : known;
      const live = () => tree.filter(alive);
      if (live().length === 0) return;
      for (const p of live()) process.kill(p, "SIGCONT"); // a frozen process cannot drain
      if (running()) child!.kill("SIGTERM");
      else for (const p of live()) process.kill(p, "SIGTERM");
      const deadline = Date.now() + graceMs;
      while (live().length && Date.now() < deadline) await sleep(100);
      // A command launch (npm -> sh -> tsx -> node) may leave its server behind: never leave it running.
      for (const p of live()) process.kill(p, "SIGKILL");
      if (running()) await exited;
    },
  };
  return instance;
}
