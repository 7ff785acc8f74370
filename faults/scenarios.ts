/**
 * The faults, one per scenario. Each breaks one piece of a running two-instance
 * deployment mid-load, brings it back the way an operator or supervisor would,
 * and returns when the fault is over; the suite measures the rest.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FaultWindow } from "./lib/analyze";
import { ConcertService } from "../gen/boxoffice/concert/v1/concert_service_pb";
import { accepts, alive, descendants, ROOT, sleep, type PostgresControl, type RedisNode, type ServerInstance } from "./lib/cluster";
import { createConnectCaller, createGrpcCaller, describeFailure } from "./load/callers";

export interface Timing {
  quick: boolean;
  loadProcesses: number;
  buyersPerProcess: number;
  /** Load before the fault. */
  warmupMs: number;
  /** Load after the fault's end. Must exceed recoveryWindowMs. */
  tailMs: number;
  /** "Recovered by itself": calls succeed again within this long after the fault ends. */
  recoveryWindowMs: number;
  /** How long a dead piece stays dead (server, PostgreSQL, Redis). */
  downMs: number;
  /** HOLD_LOCK_TTL of the servers; the SIGSTOP lasts twice as long. */
  lockTtlMs: number;
  /** SHUTDOWN_GRACE of the servers. */
  shutdownGraceMs: number;
  thinkMs: number;
  callTimeoutMs: number;
}

export const FULL: Timing = {
  quick: false,
  loadProcesses: 2,
  buyersPerProcess: 20,
  warmupMs: 3000,
  tailMs: 12_000,
  recoveryWindowMs: 10_000,
  downMs: 3000,
  lockTtlMs: 2000,
  shutdownGraceMs: 5000,
  thinkMs: 250,
  callTimeoutMs: 3000,
};

export const QUICK: Timing = {
  quick: true,
  loadProcesses: 2,
  buyersPerProcess: 6,
  warmupMs: 2000,
  tailMs: 7000,
  recoveryWindowMs: 5000,
  downMs: 1500,
  lockTtlMs: 2000,
  shutdownGraceMs: 3000,
  thinkMs: 250,
  callTimeoutMs: 3000,
};

export interface FaultContext {
  /** [A, B]. B is the one that gets killed, frozen or drained. */
  servers: ServerInstance[];
  /** [queue node, node 2, node 3]: the queue lives on the first; Redlock votes on all three. */
  redis: RedisNode[];
  pg: PostgresControl;
  timing: Timing;
  log(line: string): void;
}

export interface Scenario {
  name: string;
  title: string;
  /** How instance B is started: as the other (`node --import tsx src/main.ts`) or with README's production command. */
  launchB?: "readme";
  inject(ctx: FaultContext): Promise<FaultWindow>;
}

export interface StartCommand {
  /** What B runs, e.g. ["npm", "start"]. */
  argv: string[];
  /** Commands the README runs before it (e.g. a build), run once; installs (npm ci / npm install) are skipped. */
  prepare: string[][];
  /** Where it came from. */
  source: string;
}

/**
 * The production start command as README.md documents it at the time of the
 * run: the first shell line that starts the server ("start" in it) in a
 * section about production if there is one, else under "On a fresh machine"
 * (today `npm ci && npm start` -> `npm start`). Falls back to `npm start`.
 */
export function readmeStartCommand(): StartCommand {
  try {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const sections = readme.split(/^#{2,3} /m);
    const ordered = [...sections.filter((x) => /^[^\n]*production/i.test(x)), ...sections.filter((x) => x.startsWith("On a fresh machine"))];
    for (const section of ordered) {
      for (const block of section.matchAll(/```(?:sh|bash|shell)?\n([\s\S]*?)```/g)) {
        const lines = block[1]
          .split("\n")
          .map((l) => l.replace(/\s+#.*$/, "").trim())
          .filter((l) => l && !l.startsWith("#"));
        const at = lines.findIndex((l) => /\bstart\b|start:|main\.js/.test(l) && !/=\S/.test(l.split(/\s+/)[0]));
        if (at < 0) continue;
        // The commands before it in the same block (a build) run first, as an operator would.
        const parts = lines
          .slice(0, at + 1)
          .join(" && ")
          .split("&&")
          .map((x) => x.trim().split(/\s+/));
        const argv = parts.pop()!;
        const prepare = parts.filter((x) => !(x[0] === "npm" && ["ci", "install", "i"].includes(x[1])));
        return { argv, prepare, source: `README.md, "${section.split("\n")[0].trim()}"` };
      }
    }
  } catch {
    /* fall through */
  }
  return { argv: ["npm", "start"], prepare: [], source: "fallback (no start command found in README.md)" };
}

/** Starts a piece again; a failure is a finding of the scenario (noted), not a crash of the suite. */
async function restart(what: string, start: () => Promise<void> | void, notes: FaultWindow["notes"]): Promise<void> {
  try {
    await start();
  } catch (err) {
    notes[`${what} restart`] = `FAILED: ${String((err as Error)?.message ?? err).slice(0, 200)}`;
  }
}

function serverPidOrThrow(s: ServerInstance): number {
  const pid = s.serverPid();
  if (!pid) throw new Error(`no process serves instance ${s.name}'s port ${s.port}`);
  return pid;
}

export const SCENARIOS: Scenario[] = [
  {
    name: "server-kill",
    title: "kill -9 of server B mid-load; a supervisor starts it again on its port after the down time",
    async inject({ servers: [, b], timing, log }) {
      const pid = serverPidOrThrow(b);
      const start = Date.now();
      process.kill(pid, "SIGKILL");
      await b.exited();
      log(`  killed B (pid ${pid}); restarting in ${timing.downMs} ms`);
      await sleep(timing.downMs);
      const restartAt = Date.now();
      const notes: FaultWindow["notes"] = {};
      await restart("B", () => b.start(), notes);
      notes["B back after (ms)"] = Date.now() - start;
      return { start, end: Date.now(), marks: { restartAt }, notes };
    },
  },
  {
    name: "postgres-restart",
    title: "PostgreSQL stopped (pg_ctl stop -m fast) mid-load, started again on the same data dir and port after the down time",
    async inject({ pg, timing, log }) {
      const start = Date.now();
      pg.stopFast();
      const stoppedAt = Date.now();
      log(`  PostgreSQL stopped in ${stoppedAt - start} ms; starting again in ${timing.downMs} ms`);
      await sleep(timing.downMs);
      const notes: FaultWindow["notes"] = {};
      await restart("PostgreSQL", () => pg.start(), notes);
      notes["PostgreSQL down (ms)"] = Date.now() - start;
      return { start, end: Date.now(), marks: { stoppedAt }, notes };
    },
  },
  {
    name: "redis-node-kill",
    title: "kill -9 of Redis node 3 of 3 (a Redlock voter, not the queue's), restarted empty after the down time",
    async inject({ redis, timing, log }) {
      const start = Date.now();
      await redis[2].kill();
      log(`  killed Redis node 3 (:${redis[2].port}); restarting in ${timing.downMs} ms`);
      await sleep(timing.downMs);
      const notes: FaultWindow["notes"] = {};
      await restart("Redis node 3", () => redis[2].start(), notes);
      return { start, end: Date.now(), marks: {}, notes };
    },
  },
  {
    name: "queue-redis-wipe",
    title: "kill -9 of the queue's Redis (node 1), restarted EMPTY on the same port after the down time",
    async inject({ redis, timing, log }) {
      const start = Date.now();
      await redis[0].kill();
      log(`  killed the queue's Redis (:${redis[0].port}); restarting it empty in ${timing.downMs} ms`);
      await sleep(timing.downMs);
      const notes: FaultWindow["notes"] = {};
      await restart("queue Redis", () => redis[0].start(), notes);
      return { start, end: Date.now(), marks: {}, notes };
    },
  },
  {
    name: "server-freeze",
    title: "SIGSTOP of server B for twice the hold lock lease (HOLD_LOCK_TTL), then SIGCONT",
    async inject({ servers: [, b], timing, log }) {
      const pid = serverPidOrThrow(b);
      const frozenMs = 2 * timing.lockTtlMs;
      const start = Date.now();
      process.kill(pid, "SIGSTOP");
      log(`  froze B (pid ${pid}) for ${frozenMs} ms (lock lease ${timing.lockTtlMs} ms)`);
      try {
        await sleep(frozenMs);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      return { start, end: Date.now(), marks: {}, notes: { "frozen (ms)": frozenMs, "lock lease (ms)": timing.lockTtlMs } };
    },
  },
  {
    name: "sigterm-drain",
    title: "SIGTERM to server B started with README's production command; it must drain and exit; then started again",
    launchB: "readme",
    async inject({ servers: [, b], timing, log }) {
      const top = b.child();
      if (!top?.pid) throw new Error("instance B is not running");
      const serverPid = serverPidOrThrow(b);
      const tree = [top.pid, ...descendants(top.pid)];
      const limitMs = timing.shutdownGraceMs + 10_000;
      // Calls certainly in flight at the signal, over both protocols (ListConcerts): a drain lets them finish
      // (or refuses them before they start), it does not cut them.
      const callers = [createGrpcCaller([b.port]), createConnectCaller([b.port])];
      const burst = Array.from({ length: 16 }, (_, i) =>
        // A catalog read: it touches the database but takes no place in the waiting room.
        callers[i % 2].call(0, ConcertService.method.listConcerts, {}, { timeoutMs: limitMs }).then(
          () => `${callers[i % 2].protocol} OK`,
          (err) => {
            const f = describeFailure(err);
            return `${callers[i % 2].protocol} ${f.code}${f.reason ? ` ${f.reason}` : ""} (${f.message.slice(0, 40)})`;
          },
        ),
      );
      await new Promise((r) => setImmediate(r));
      const start = Date.now();
      // An orchestrator signals the process it started (npm here), not its grandchild.
      top.kill("SIGTERM");
      let serverExitMs: number | undefined;
      let portClosedMs: number | undefined;
      const topExit = b.exited().then((e) => ({ ...e, ms: Date.now() - start }));
      let topDone: { code: number | null; signal: NodeJS.Signals | null; ms: number } | undefined;
      void topExit.then((e) => (topDone = e));
      while (Date.now() - start < limitMs && (!topDone || serverExitMs === undefined)) {
        if (serverExitMs === undefined && !alive(serverPid)) serverExitMs = Date.now() - start;
        if (portClosedMs === undefined && !(await accepts(b.port, 200))) portClosedMs = Date.now() - start;
        await sleep(50);
      }
      await sleep(300);
      const leftovers = tree.filter(alive);
      const drained = !!topDone && serverExitMs !== undefined && leftovers.length === 0;
      log(
        `  SIGTERM to ${b.launch.kind === "command" ? b.launch.argv.join(" ") : "B"} (pid ${top.pid}): ${drained ? "drained and exited" : "did NOT drain and exit"}`,
      );
      if (!drained) await b.stop(1000); // what an orchestrator does after its timeout: SIGKILL
      const stoppedAt = Date.now();
      const notes: FaultWindow["notes"] = {
        command: b.launch.kind === "command" ? b.launch.argv.join(" ") : "node --import tsx src/main.ts",
        "drained and exited": drained,
        "top process exit": topDone ? `${topDone.signal ?? `code ${topDone.code}`} after ${topDone.ms} ms` : `still running after ${limitMs} ms`,
        "server process exited after (ms)": serverExitMs ?? -1,
        "port closed after (ms)": portClosedMs ?? -1,
        "processes left behind": leftovers.length,
      };
      const outcomes: Record<string, number> = {};
      for (const o of await Promise.all(burst)) outcomes[o] = (outcomes[o] ?? 0) + 1;
      for (const c of callers) c.close();
      notes["16 ListConcerts sent just before SIGTERM"] = Object.entries(outcomes)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
      await restart("B", () => b.start(), notes);
      return { start, end: Date.now(), marks: { sigtermAt: start, stoppedAt }, notes };
    },
  },
];
