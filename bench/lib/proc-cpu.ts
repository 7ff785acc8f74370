import { readdirSync, readFileSync } from "node:fs";

/** Who holds the CPU: user + system seconds of a process and all its descendants, from /proc (Linux). */

const TICKS_PER_SECOND = 100; // USER_HZ

function stat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined; // gone
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (list) out.push(...list.split(" ").map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

/**
 * CPU seconds used so far by `pid` and its descendants: live ones by their own
 * counters, exited ones through their parents' counters of reaped children.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    const f = stat(p);
    if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime, stime, cutime, cstime
    todo.push(...children(p));
  }
  return ticks / TICKS_PER_SECOND;
}

/** The postmaster serving `dataDir`, found by its command line. */
export function postmasterPid(dataDir: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const i = argv.indexOf("-D");
      if (i >= 0 && argv[i + 1] === dataDir && /postgres$/.test(argv[0])) return Number(entry);
    } catch {
      /* gone or not ours to read */
    }
  }
  return undefined;
}

/**
 * CPU seconds used so far by the live backends of `postmaster` serving
 * `database` (by process title: "postgres: <user> <database> <host>(<port>) ..."):
 * the work of one client's sessions, without autovacuum, checkpoints or
 * another client's backends.
 */
export function backendCpuSeconds(postmaster: number, database: string): number {
  let ticks = 0;
  for (const pid of children(postmaster)) {
    let title: string;
    try {
      title = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
    } catch {
      continue;
    }
    if (title.split(/\s+/)[2] !== database) continue;
    const f = stat(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICKS_PER_SECOND;
}
