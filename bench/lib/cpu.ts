import { readFileSync, readdirSync } from "node:fs";

/** CPU seconds (user + system) used so far by each process of a group, from /proc. */
export interface CpuGroups {
  [group: string]: number[];
}

const TICKS = 100; // USER_HZ on Linux

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the full line (12 and 13 after the name).
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

/** The given processes and all their descendants (a launcher like tsx runs the real work in a child). */
export function withDescendants(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const visit = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  roots.forEach(visit);
  return out;
}

/**
 * Measures how much CPU each group of processes used between start() and
 * stop(), as a share of the whole machine (2 cores = 200 % at most), so a
 * report can say which process held the CPU. Groups given as functions are
 * re-read at stop (PostgreSQL forks a backend per connection).
 */
export function cpuMeter(groups: Record<string, () => number[]>) {
  let t0 = 0;
  let before = new Map<number, number>();
  const snapshot = () => {
    const m = new Map<number, number>();
    for (const pids of Object.values(groups)) for (const pid of withDescendants(pids())) m.set(pid, cpuSeconds(pid));
    return m;
  };
  return {
    start() {
      t0 = performance.now();
      before = snapshot();
    },
    /** Percent of one core per group over the interval. */
    stop(): Record<string, number> {
      const seconds = (performance.now() - t0) / 1000;
      const out: Record<string, number> = {};
      for (const [name, pids] of Object.entries(groups)) {
        let used = 0;
        for (const pid of withDescendants(pids())) used += cpuSeconds(pid) - (before.get(pid) ?? 0);
        out[name] = (100 * used) / seconds;
      }
      return out;
    },
  };
}
