/**
 * The fault suite's short variant (`npm run faults -- --quick`) for the
 * scenarios that are fast and deterministic enough for CI: a server killed
 * with kill -9 and PostgreSQL restarted, each under a small load from two
 * processes over gRPC and Connect. It starts its own PostgreSQL and Redis
 * nodes (a restart of the shared ones would break the suites running beside
 * it) and asserts only what must hold whatever the timing: the invariants,
 * no OK answer without its record, and service coming back by itself.
 * Timings are the full run's business (docs/faults.md).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { details } from "../../faults/report";
import { runSuite, type SuiteReport } from "../../faults/suite";

const SCENARIOS = ["server-kill", "postgres-restart"];

let report: SuiteReport;
const outDir = mkdtempSync(join(tmpdir(), "boxoffice-faults-"));

beforeAll(async () => {
  const lines: string[] = [];
  report = await runSuite({ quick: true, scenarios: SCENARIOS, outDir, log: (l) => lines.push(l) });
  // What each scenario saw, for whoever reads a failure.
  process.stderr.write(`\n${report.scenarios.map(details).join("\n\n")}\n`);
  // About 70 s on an idle machine; server starts alone can take a minute each when others load it.
}, 420_000);

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe.each(SCENARIOS)("%s (quick)", (name) => {
  const scenario = () => {
    const r = report.scenarios.find((s) => s.name === name);
    if (!r) throw new Error(`${name} did not run`);
    return r;
  };

  test("ran with load that saw the fault", () => {
    const r = scenario();
    expect(r.error).toBeUndefined();
    expect(r.loadProcessErrors).toEqual([]);
    expect(r.calls!.ok).toBeGreaterThan(0);
    expect(r.reconciliation!.checked.payments).toBeGreaterThan(0);
  });

  test("the money and seat invariants hold", () => {
    expect(scenario().invariants).toMatchObject({ ok: true });
  });

  test("no data lost: every OK answer has its record, nothing was paid that nobody asked for", () => {
    const r = scenario();
    expect(r.dataLost).toBe(0);
    expect(r.reconciliation).toMatchObject({ conflictingAnswers: 0, unattemptedPayments: 0, unattemptedCharges: 0, balanceMismatches: 0 });
  });

  test("recovered by itself: calls succeed again on both instances after the fault", () => {
    const a = scenario().availability!;
    expect({ recovered: a.recovered, why: a.notRecoveredBecause }).toEqual({ recovered: true, why: undefined });
  });
});
