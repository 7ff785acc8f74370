/**
 * The whole benchmark suite: each scenario runs as its own program
 * on its own services, one after another so they never share the 2 cores,
 * then the ratios that matter are printed side by side and saved as JSON.
 *
 *   npm run bench              full: 1M waiting, 10,000 buyers, 1 and 3 instances
 *   npm run bench -- --quick   a smaller pass of every scenario (one instance on-sale), under 2 minutes
 *
 * Scenarios: bare RPC, token storm, polling and streaming (bench/queue.ts);
 * on-sale hold race (bench/holds.ts); payments beside pgbench TPC-B
 * (bench/payments.ts); the full on-sale flow on 1 and 3 instances
 * (bench/onsale.ts); redis-benchmark for the queue's commands (bench/limits.ts).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseFlags } from "./lib/flags";
import { table } from "./lib/load";
import type { OnsaleResult } from "./onsale";

const QUICK = parseFlags("npm run bench -- [--quick]", { quick: { type: "boolean" } }).values.quick === true;
const ROOT = join(__dirname, "..");
const RESULTS = join(__dirname, "results");
const SCENARIOS = ["queue", "holds", "payments", "onsale", "limits"] as const;
type Scenario = (typeof SCENARIOS)[number];

/** The parts of each scenario's JSON the summary reads (keyed by waiting-room size or client count); all may be missing. */
interface ScenarioJson {
  queue: {
    statusP99?: Record<number, number>;
    tokenIssueToBare?: Record<number, number>;
    redisBytesPerWaitingUser?: Record<number, number>;
    streams?: { rssBytesPerStream?: number };
  };
  holds: { holdToBare?: number; race?: { rpc?: { HoldSeat?: { p99?: number } } }; winners?: { ok?: boolean; free?: number } };
  payments: { levels?: { clients: number; ratio: number }[] };
  onsale: { one: OnsaleResult; three?: OnsaleResult };
  limits: unknown;
}

interface Ran<S extends Scenario> {
  exitCode: number | null;
  seconds: number;
  result: ScenarioJson[S] | undefined;
}

/** The JSON a scenario wrote during this suite run. */
function newestResult<S extends Scenario>(name: S, since: number): ScenarioJson[S] | undefined {
  const files = readdirSync(RESULTS)
    .filter((f) => f.startsWith(`${name}-`) && f.endsWith(".json"))
    .map((f) => ({ f, t: statSync(join(RESULTS, f)).mtimeMs }))
    .filter((x) => x.t >= since)
    .sort((a, b) => b.t - a.t);
  return files.length ? (JSON.parse(readFileSync(join(RESULTS, files[0].f), "utf8")) as ScenarioJson[S]) : undefined;
}

/** a ÷ b, or undefined when either is missing. */
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);

const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "n/a" : `${(100 * x).toFixed(0)} %`);
const num = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(digits));

function main() {
  mkdirSync(RESULTS, { recursive: true });
  const started = Date.now();
  const runScenario = <S extends Scenario>(name: S): Ran<S> => {
    const t0 = Date.now();
    console.log(`\n======== ${name} ${QUICK ? "(quick)" : ""} ========`);
    const r = spawnSync(join(ROOT, "node_modules", ".bin", "tsx"), [join("bench", `${name}.ts`), ...(QUICK ? ["--quick"] : [])], {
      cwd: ROOT,
      stdio: "inherit",
      timeout: 40 * 60_000,
    });
    return { exitCode: r.status, seconds: (Date.now() - t0) / 1000, result: newestResult(name, t0) };
  };
  // One after another, in this order.
  const ran: { [S in Scenario]: Ran<S> } = {
    queue: runScenario("queue"),
    holds: runScenario("holds"),
    payments: runScenario("payments"),
    onsale: runScenario("onsale"),
    limits: runScenario("limits"),
  };

  const q = ran.queue.result;
  const levels: number[] = q
    ? Object.keys(q.statusP99 ?? {})
        .map(Number)
        .sort((a, b) => a - b)
    : [];
  const top: number | undefined = levels[levels.length - 1];
  const h = ran.holds.result;
  const p = ran.payments.result;
  const o = ran.onsale.result;
  const rate = (r: OnsaleResult | undefined) => (r ? Object.values(r.rpcs).reduce((n, x) => n + x.calls, 0) / r.seconds : undefined);
  const rows = [
    {
      ratio: `token issue ÷ bare RPC (${top?.toLocaleString("en-US")} waiting)`,
      value: pct(top === undefined ? undefined : q?.tokenIssueToBare?.[top]),
      aim: "≥ 50 %",
    },
    {
      ratio: `status p99 at ${top?.toLocaleString("en-US")} ÷ at 1,000 waiting`,
      value: num(ratio(top === undefined ? undefined : q?.statusP99?.[top], q?.statusP99?.[1000]), 2),
      aim: "≤ 1.5",
    },
    {
      ratio: `Redis bytes per waiting user (${top?.toLocaleString("en-US")})`,
      value: num(top === undefined ? undefined : q?.redisBytesPerWaitingUser?.[top]),
      aim: "≤ 150",
    },
    { ratio: "server memory per open stream (KiB, RSS)", value: num(ratio(q?.streams?.rssBytesPerStream, 1024), 1), aim: "" },
    { ratio: "hold ÷ bare RPC (on-sale race)", value: pct(h?.holdToBare), aim: "≥ 30 %" },
    { ratio: "hold p99 (ms) in the race", value: num(h?.race?.rpc?.HoldSeat?.p99, 1), aim: "< 100" },
    {
      ratio: "winners per seat",
      value: h ? (h.winners?.ok && h.winners?.free === 0 ? "exactly 1" : h.winners?.ok ? "≤ 1 (race cut short: seats left)" : "NOT 1") : "n/a",
      aim: "1",
    },
    ...(p?.levels ?? []).map((l) => ({ ratio: `payments ÷ pgbench TPS, ${l.clients} clients`, value: pct(l.ratio), aim: "≥ 60 %" })),
    { ratio: "3 instances ÷ 1 instance (all RPCs/s, on-sale flow)", value: num(ratio(rate(o?.three), rate(o?.one)), 2), aim: "report" },
    {
      ratio: "on-sale errors (1 / 3 instances)",
      value: o ? `${Object.keys(o.one.errors).length} / ${o.three ? Object.keys(o.three.errors).length : "not run"}` : "n/a",
      aim: "0",
    },
    {
      ratio: "on-sale invariants (1 / 3 instances)",
      value: o ? `${o.one.invariants.ok ? "hold" : "VIOLATED"} / ${o.three ? (o.three.invariants.ok ? "hold" : "VIOLATED") : "not run"}` : "n/a",
      aim: "hold",
    },
  ];
  console.log(`\n======== summary (${QUICK ? "quick" : "full"}, ${((Date.now() - started) / 1000).toFixed(0)} s) ========`);
  console.log(
    table(
      Object.entries(ran).map(([name, r]) => ({
        scenario: name,
        "exit code": String(r.exitCode),
        seconds: r.seconds,
        "JSON written": r.result ? "yes" : "no",
      })),
    ),
  );
  console.log();
  console.log(table(rows));
  const file = join(RESULTS, `suite-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ quick: QUICK, ratios: rows, scenarios: ran }, null, 2));
  console.log(`\nJSON: ${file}`);
  if (Object.values(ran).some((r) => r.exitCode !== 0)) process.exitCode = 1;
}

main();
