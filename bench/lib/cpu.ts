import { treeCpuSeconds } from "./proc-cpu";

/**
 * Measures how much CPU each group of processes (each root with all its
 * descendants) used between start() and stop(), as a percentage of one core
 * (2 cores = 200 % at most), so a report can say which process held the CPU.
 * Groups are functions, read again at stop: load processes may start later.
 */
export function cpuMeter(groups: Record<string, () => number[]>) {
  let t0 = 0;
  let before = new Map<number, number>();
  const snapshot = () => {
    const m = new Map<number, number>();
    for (const roots of Object.values(groups)) for (const pid of roots()) m.set(pid, treeCpuSeconds(pid));
    return m;
  };
  return {
    start() {
      t0 = performance.now();
      before = snapshot();
    },
    stop(): Record<string, number> {
      const seconds = (performance.now() - t0) / 1000;
      const out: Record<string, number> = {};
      for (const [name, roots] of Object.entries(groups)) {
        let used = 0;
        for (const pid of roots()) used += treeCpuSeconds(pid) - (before.get(pid) ?? 0);
        out[name] = (100 * used) / seconds;
      }
      return out;
    },
  };
}
