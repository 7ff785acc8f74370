/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and says where the time
 * went: the top frames by self time, aggregated by function and file, and self
 * time per package (node internals, each npm package, the app's own modules).
 * Samples can be limited to a window of the monotonic clock, so a profile of a
 * whole server process reports only the load phase.
 *
 *   npx tsx bench/lib/cpu-profile.ts <file.cpuprofile> [--top 25] [--windows bench/results/payments-....json]
 *
 * --windows takes the load windows a benchmark's JSON recorded (profile.windows).
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { parseFlags } from "./flags";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the monotonic clock (the same clock as process.hrtime). */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameTime {
  frame: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  /** Sampled time inside the window. */
  ms: number;
  /** Of which the process was idle (waiting for I/O). */
  idleMs: number;
  /** Samples inside the window. */
  samples: number;
  /** By self time, idle excluded; pct of busy time. */
  topFrames: FrameTime[];
  byPackage: FrameTime[];
  /** Inclusive time of the app's own functions (src/), synchronous parts only. */
  appInclusive: FrameTime[];
  /** Native frames (socket writes, ...) by the package that called them: whose I/O it is. */
  nativeByCaller: FrameTime[];
}

export interface Window {
  /** On the monotonic clock, in microseconds (`process.hrtime.bigint() / 1000n`). */
  fromUs: number;
  toUs: number;
}

export interface SummaryOptions {
  /** Only samples inside these windows (all samples when absent). */
  windows?: Window[];
  top?: number;
}

const ROOT = process.cwd();

function where(url: string): string {
  if (!url) return "";
  const path = url.startsWith("file://") ? decodeURIComponent(url.slice(7)) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) return path.slice(nm + "/node_modules/".length);
  return path.startsWith(ROOT) ? relative(ROOT, path) : path;
}

/** A package-level bucket: "node:http2", "@mikro-orm/core", "pg", "app src/modules/payment", "(gc)". */
function packageOf(f: CallFrame): string {
  const name = f.functionName;
  if (!f.url) {
    if (name === "(garbage collector)") return "(gc)";
    if (name.startsWith("(")) return name;
    return "(native)";
  }
  if (f.url.startsWith("node:")) {
    const parts = f.url.slice(5).split("/");
    return `node:${parts[0] === "internal" ? (parts[1] ?? "internal").replace(/\.js$/, "") : parts[0]}`;
  }
  const path = f.url.startsWith("file://") ? decodeURIComponent(f.url.slice(7)) : f.url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = path.slice(nm + "/node_modules/".length).split("/");
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const rel = where(f.url).split("/");
  return `app ${rel.slice(0, Math.min(3, rel.length - 1)).join("/")}`;
}

function frameName(f: CallFrame): string {
  const file = where(f.url);
  return `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
}

export function summarizeProfile(path: string, o: SummaryOptions = {}): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Each sample stands for the time until the next one.
  const inside = (t: number) => !o.windows || o.windows.some((w) => t >= w.fromUs && t <= w.toUs);
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (!inside(t)) continue;
    const dur = profile.timeDeltas[i + 1] ?? 0;
    samples++;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dur);
    total += dur;
  }

  const self = new Map<string, number>();
  const pkg = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const nativeByCaller = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    // (program) is native work outside JS (the event loop, I/O syscalls): busy, shown as its own frame.
    if (node.callFrame.functionName === "(idle)" && !node.callFrame.url) {
      idle += us;
      continue;
    }
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + us);
    const p = packageOf(node.callFrame);
    pkg.set(p, (pkg.get(p) ?? 0) + us);
    if (p === "(native)") {
      let cur = parent.get(id);
      const chain: string[] = [];
      // The nearest JS frames above the native one, skipping node's own plumbing, name the caller.
      while (cur !== undefined && chain.length < 1) {
        const f = byId.get(cur)!.callFrame;
        if (f.url && !f.url.startsWith("node:")) chain.push(packageOf(f));
        cur = parent.get(cur);
      }
      const caller = `${node.callFrame.functionName} <- ${chain[0] ?? "node internals"}`;
      nativeByCaller.set(caller, (nativeByCaller.get(caller) ?? 0) + us);
    }
    // Inclusive time for the app's own frames: each ancestor once per sample node.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!f.url.startsWith("file://") || f.url.includes("/node_modules/")) continue;
      const n = frameName(f);
      if (seen.has(n)) continue;
      seen.add(n);
      inclusive.set(n, (inclusive.get(n) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>, n: number): FrameTime[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([frame, us]) => ({ frame, ms: us / 1000, pct: busy > 0 ? (100 * us) / busy : 0 }));
  const top = o.top ?? 25;
  return {
    ms: total / 1000,
    idleMs: idle / 1000,
    samples,
    topFrames: rank(self, top),
    byPackage: rank(pkg, 15),
    appInclusive: rank(inclusive, 12),
    nativeByCaller: rank(nativeByCaller, 8),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = (title: string, rows: FrameTime[]) => [
    title,
    ...rows.map((r) => `  ${r.pct.toFixed(1).padStart(5)} %  ${r.ms.toFixed(0).padStart(6)} ms  ${r.frame}`),
  ];
  return [
    `window ${(s.ms / 1000).toFixed(1)} s sampled, busy ${((s.ms - s.idleMs) / 1000).toFixed(1)} s (${((100 * (s.ms - s.idleMs)) / Math.max(s.ms, 1e-9)).toFixed(0)} %); percentages are of busy time`,
    ...lines("top frames by self time (function + file):", s.topFrames),
    ...lines("self time by package:", s.byPackage),
    ...lines("app functions, inclusive (synchronous parts):", s.appInclusive),
    ...lines("native frames by calling package:", s.nativeByCaller),
  ].join("\n");
}

if (require.main === module) {
  const usage = "usage: tsx bench/lib/cpu-profile.ts <file.cpuprofile> [--top 25] [--windows results.json]";
  const flags = parseFlags(usage, { top: { type: "string" }, windows: { type: "string" } }, { positionals: true });
  const [file] = flags.positionals;
  if (!file || flags.positionals.length > 1) {
    console.error(usage);
    process.exit(2);
  }
  const json = flags.values.windows;
  const windows = json ? (JSON.parse(readFileSync(json, "utf8")) as { profile?: { windows?: Window[] } }).profile?.windows : undefined;
  if (json && !windows) throw new Error(`${json} records no profile windows`);
  console.log(formatSummary(summarizeProfile(file, { top: flags.int("top", 25), windows })));
}
