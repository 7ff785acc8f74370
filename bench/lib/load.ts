/** Closed-loop load: `concurrency` callers, each calling again as soon as its call returns. */

export interface LoadResult {
  calls: number;
  errors: number;
  /** Calls the caller classified as expected business refusals (seat taken, waiting, ...). */
  refusals: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  /** Up to 5 distinct error messages, for the report. */
  errorSamples: string[];
}

export interface LoadOptions {
  concurrency: number;
  /** Stops after this long ... */
  durationMs: number;
  /** ... or after this many calls, whichever comes first. */
  maxCalls?: number;
  /** Resolves "refused" for an expected refusal; throws for an error. */
  call: (i: number) => Promise<"refused" | undefined>;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const samples = new Set<string>();
  let errors = 0;
  let refusals = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + o.durationMs;
  const max = o.maxCalls ?? Number.POSITIVE_INFINITY;
  const worker = async () => {
    while (performance.now() < deadline && next < max) {
      const i = next++;
      const t = performance.now();
      try {
        if ((await o.call(i)) === "refused") refusals++;
        latencies.push(performance.now() - t);
      } catch (err) {
        errors++;
        if (samples.size < 5) samples.add(String((err as Error)?.message ?? err).slice(0, 200));
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    calls: latencies.length,
    errors,
    refusals,
    seconds,
    perSecond: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    errorSamples: [...samples],
  };
}

/** A fixed-width table for the terminal. */
export function table(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return "";
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === "number" ? fmt(v) : v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? "").length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join("  ");
  return [line(cols), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c] ?? ""))))].join("\n");
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}
