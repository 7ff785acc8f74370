/**
 * Private redis-server processes for fault tests: a node that can be killed
 * and started again on the same port (empty, unless it persists), replicas,
 * and a sentinel. Loopback only, free ports, killed by the test that made them.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../harness/services";

function redisBinary(): string {
  const r = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (r.status === 0) return r.stdout.trim();
  if (existsSync("/usr/bin/redis-server")) return "/usr/bin/redis-server";
  throw new Error("redis-server was not found (apt-get install -y redis-server)");
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export interface RedisProcess {
  port: number;
  url: string;
  /** SIGKILL: no shutdown save, no goodbye to clients. */
  kill(): Promise<void>;
  /** Starts it again on the same port, with the same arguments. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Kills it and removes its directory. */
  remove(): Promise<void>;
}

/**
 * A redis-server with `args` (after port, bind and dir). Without persistence
 * arguments it keeps nothing: a restart is empty. `sentinel` gives the lines
 * of a sentinel configuration file instead (it must be able to rewrite it).
 */
export async function spawnRedis(options: { args?: string[]; sentinel?: string[] } = {}): Promise<RedisProcess> {
  const binary = redisBinary();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-fault-redis-"));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const argv = () => {
    if (!options.sentinel) {
      const persistence = options.args?.some((a) => a === "--appendonly") ? [] : ["--save", "", "--appendonly", "no"];
      return ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--loglevel", "warning", ...persistence, ...(options.args ?? [])];
    }
    const conf = join(dir, "sentinel.conf");
    writeFileSync(conf, `${[`port ${port}`, "bind 127.0.0.1", `dir ${dir}`, "loglevel warning", ...options.sentinel].join("\n")}\n`);
    return [conf, "--sentinel"];
  };
  const proc: RedisProcess = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(binary, argv(), { stdio: "ignore" });
      child.unref();
      const c = child;
      exited = new Promise((resolve) => c.once("exit", () => resolve()));
      for (const deadline = Date.now() + 10_000; !(await accepts(port)); ) {
        if (Date.now() > deadline || c.exitCode !== null) throw new Error(`redis-server on port ${port} did not start`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async kill() {
      if (child && child.exitCode === null) {
        child.ref();
        child.kill("SIGKILL");
        await exited;
      }
    },
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    async remove() {
      proc.thaw();
      await proc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await proc.start();
  return proc;
}

/** Polls `check` every 50 ms until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${(last as Error).message})` : ""}`);
}
