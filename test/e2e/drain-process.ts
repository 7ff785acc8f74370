/**
 * The server as a real process tree, started the way the README says
 * (`npm start`, `npm run start:prod`, `node dist/src/main.js`), stopped the way
 * a process manager or `docker stop` does: a signal to the top process only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { freePort } from "../harness";

export interface Started {
  child: ChildProcess;
  port: number;
  /** Every JSON line on stdout so far (the server's log; npm's own banner lines are skipped). */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  /** Start the process as the leader of a process group of its own, as a terminal does (for a Ctrl-C to the group). */
  ownGroup?: boolean;
  /** How long the start may take (PGlite's first start runs initdb in WebAssembly). */
  timeoutMs?: number;
}

/**
 * `argv` from the repository root, with a clean environment: what a
 * newcomer's shell would have, plus `env`.
 */
export async function startProcess(argv: string[], env: Record<string, string>, opts: StartOptions = {}): Promise<Started> {
  const port = await freePort();
  const child = spawn(argv[0], argv.slice(1), {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      npm_config_update_notifier: "false",
      HOST: "127.0.0.1",
      PORT: String(port),
      METRICS_PORT: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.ownGroup ?? false,
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = "";
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) if (line.startsWith("{")) logs.push(JSON.parse(line));
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (!logs.some((l) => l.msg === "serving gRPC, gRPC-Web and Connect")) {
    if (child.exitCode !== null) throw new Error(`${argv.join(" ")} exited with ${child.exitCode}:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${argv.join(" ")} did not start in time:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, logs, stderr: () => stderr, exited };
}

/** Sends `signal` to the top process only (or to its whole process group) and waits for it to exit. */
export async function stopProcess(p: Started, signal: NodeJS.Signals = "SIGTERM", { group = false } = {}) {
  const started = Date.now();
  if (group) process.kill(-p.child.pid!, signal);
  else p.child.kill(signal);
  const result = await p.exited;
  return { ...result, ms: Date.now() - started };
}

export interface ProcessInfo {
  pid: number;
  /** The command line, arguments joined with spaces. */
  cmdline: string;
}

/** Every live descendant of `pid` (zombies count as gone), read from /proc. */
export function descendants(pid: number): ProcessInfo[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(Number(entry), "stat");
    if (!stat) continue;
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state === "Z") continue;
    const list = children.get(Number(ppid)) ?? [];
    list.push(Number(entry));
    children.set(Number(ppid), list);
  }
  const found: ProcessInfo[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    found.push({ pid: p, cmdline: (readProc(p, "cmdline") ?? "").split("\0").filter(Boolean).join(" ") });
    queue.push(...(children.get(p) ?? []));
  }
  return found;
}

/** Those of `processes` that still run (a zombie does not). */
export function stillRunning(processes: ProcessInfo[]): ProcessInfo[] {
  return processes.filter((p) => {
    const stat = readProc(p.pid, "stat");
    return stat !== undefined && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  });
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined;
  }
}

export function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}
