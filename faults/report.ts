/** The suite's report for a terminal: one summary table, then what each scenario saw. */
import { cpus } from "node:os";
import { table } from "../bench/lib/load";
import type { ScenarioReport, SuiteReport } from "./suite";

const yesNo = (b: boolean | undefined) => (b === undefined ? "-" : b ? "yes" : "NO");

/** A scenario passes the suite's hard bar: invariants held, nothing lost, recovered by itself. */
export function passed(r: ScenarioReport): boolean {
  return !r.error && r.invariants?.ok === true && r.dataLost === 0 && r.availability?.recovered === true;
}

export function summaryRows(report: SuiteReport): Record<string, string | number>[] {
  // Strings, not numbers: the table's number format would print a count of 0 as "0.00".
  const n = (v: number | undefined) => (v === undefined ? "-" : String(v));
  return report.scenarios.map((r) => ({
    scenario: r.name,
    calls: n(r.calls?.attempted),
    ok: n(r.calls?.ok),
    failed: n(r.calls?.failed),
    "unavailable ms": r.availability ? String(r.availability.windowMs) : "-",
    invariants: r.invariants ? (r.invariants.ok ? "held" : "VIOLATED") : "-",
    "data lost": n(r.dataLost),
    recovered: r.availability ? `${yesNo(r.availability.recovered)}${r.availability.recovered ? ` (${r.availability.failingAfterEndMs} ms)` : ""}` : "-",
    "places lost": n(r.queue?.placesLost),
    "token split": r.tokens ? `${r.tokens.split}/${r.tokens.users}` : "-",
    error: r.error ? "yes" : "",
  }));
}

function top(m: Record<string, number>, n = 8): string {
  const e = Object.entries(m).sort((a, b) => b[1] - a[1]);
  if (!e.length) return "none";
  const shown = e.slice(0, n).map(([k, v]) => `${k} ${v}`);
  return e.length > n ? `${shown.join(", ")}, ... (${e.length - n} more)` : shown.join(", ");
}

export function details(r: ScenarioReport): string {
  const out: string[] = [`${r.name}: ${r.title}`];
  if (r.error) out.push(`  ERROR: ${r.error}`);
  if (r.startCommand)
    out.push(
      `  B started with: ${r.startCommand.argv.join(" ")} (${r.startCommand.source})${r.startCommand.prepare.length ? `, after ${r.startCommand.prepare.map((x) => x.join(" ")).join(" && ")}` : ""}`,
    );
  if (r.fault) {
    const notes = Object.entries(r.fault.notes).map(([k, v]) => `${k}: ${v}`);
    out.push(`  fault: at +${r.fault.startOffsetMs} ms, over after ${r.fault.durationMs} ms${notes.length ? `; ${notes.join("; ")}` : ""}`);
  }
  if (r.calls) {
    out.push(
      `  calls: ${r.calls.attempted} attempted, ${r.calls.ok} ok, ${r.calls.failed} failed; ${r.calls.retried} calls retried (${r.calls.retries} retries)`,
    );
    out.push(`  failed by code: ${top(r.calls.failedBy)}`);
    out.push(
      `  by RPC (ok/attempted): ${Object.entries(r.calls.byRpc)
        .map(([k, v]) => `${k} ${v.ok}/${v.attempted}`)
        .join(", ")}`,
    );
    out.push(
      `  by protocol (ok/attempted): ${Object.entries(r.calls.byProtocol)
        .map(([k, v]) => `${k} ${v.ok}/${v.attempted}`)
        .join(", ")}`,
    );
  }
  if (r.availability) {
    const a = r.availability;
    out.push(
      `  availability: ${a.faultFailures} infrastructure failures from the fault on, window ${a.windowMs} ms, still failing ${a.failingAfterEndMs} ms after the fault ended; ` +
        `slowest OK call during the fault ${a.slowestOkDuringFaultMs} ms; ${a.strayFailures} stray failures later; ` +
        `recovered by itself: ${yesNo(a.recovered)}${a.notRecoveredBecause ? ` (${a.notRecoveredBecause})` : ""}${a.failuresBefore ? `; ${a.failuresBefore} failures BEFORE the fault` : ""}`,
    );
  }
  if (r.inFlightAtSigterm) out.push(`  calls in flight on B at SIGTERM: ${top(r.inFlightAtSigterm)}`);
  if (r.queue || r.tokens) {
    const q = r.queue;
    const t = r.tokens;
    out.push(
      `  queue: ${q ? `${q.placesLost} places lost (${q.buyersWhoLostPlace} buyers), ${q.endedByUnansweredPayment} tokens ended by an unanswered payment, ${q.movedBack} moved back in line, ${q.demoted} sent back from ACTIVE to WAITING` : "-"}; ` +
        (t
          ? `token split ${t.split} of ${t.users} users (different token strings ${t.differentTokens}, unanswered ${t.unanswered}); SERVING at the end: ${t.servingAtEnd.map(yesNo).join("/")}`
          : ""),
    );
  }
  if (r.invariants) out.push(`  invariants: ${r.invariants.ok ? "all hold" : `VIOLATED\n${r.invariants.output.replace(/^/gm, "    ")}`}`);
  if (r.reconciliation) {
    const c = r.reconciliation;
    out.push(
      `  reconciliation: checked ${c.checked.holds} holds, ${c.checked.charges} charges, ${c.checked.payments} payments answered OK; ` +
        `lost ${c.lost.holds}/${c.lost.charges}/${c.lost.payments}; balances answered wrong ${c.balanceAnswersWrong}; conflicting answers for one key ${c.conflictingAnswers}; ` +
        `payments/charges nobody attempted ${c.unattemptedPayments}/${c.unattemptedCharges}; balance != charges - payments ${c.balanceMismatches}; ` +
        `payments committed without an OK reaching the client ${c.committedUnanswered}; holds nobody got an answer for ${c.unansweredHolds}`,
    );
    for (const e of c.examples) out.push(`    ${e}`);
    for (const e of c.unansweredHoldExamples) out.push(`    hold nobody got an answer for: ${e}`);
  }
  if (r.phasesMs) out.push(`  time: setup ${r.phasesMs.setup} ms (servers, seats), load ${r.phasesMs.load} ms, checks ${r.phasesMs.checks} ms`);
  if (r.loadAverage)
    out.push(`  machine load (1-min average, ${cpus().length} cores): ${r.loadAverage.atFault} at the fault, ${r.loadAverage.atEnd} at the end`);
  if (r.outcomes)
    out.push(`  buyer rounds: ${top(r.outcomes, 10)}${r.holdKeySent === false ? " (HoldSeat sent without idempotency_key: the schema has none)" : ""}`);
  if (r.loadProcessErrors?.length) out.push(`  load processes: ${r.loadProcessErrors.join("; ")}`);
  return out.join("\n");
}

export function printReport(report: SuiteReport, print: (s: string) => void = console.log): void {
  const env = Object.keys(report.serverEnv);
  print(
    `\nfault suite (${report.quick ? "quick" : "full"}), ${report.timing.loadProcesses} load processes x ${report.timing.buyersPerProcess} buyers, ${report.seconds.toFixed(0)} s` +
      (env.length ? `; extra server env: ${env.join(", ")}` : ""),
  );
  print(table(summaryRows(report)));
  print("");
  for (const r of report.scenarios) print(`${details(r)}\n`);
}
