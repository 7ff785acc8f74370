import { Counter, type Registry } from "prom-client";
import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { Reason } from "../reasons.js";
import type { DatabaseFault } from "./faults.js";

/** How long after a logged line the same kind of failure is only counted. */
export const OUTAGE_LOG_WINDOW_MS = 10_000;

export interface OutageLogOptions {
  clock?: Clock;
  windowMs?: number;
}

/**
 * Says "at most once per window" for each key: the first call passes, later
 * ones within `windowMs` are counted; the next one to pass reports how many
 * were held back in between.
 */
export function createLogGate(windowMs: number, clock: Clock): (key: string) => { pass: true; suppressed: number } | { pass: false } {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key) => {
    const now = clock.now().getTime();
    const seen = last.get(key);
    if (seen && now - seen.at < windowMs) {
      seen.suppressed++;
      return { pass: false };
    }
    last.set(key, { at: now, suppressed: 0 });
    return { pass: true, suppressed: seen?.suppressed ?? 0 };
  };
}

export interface DatabaseOutageLog {
  /** A call (`scope`: its procedure) failed for `fault`; `fields` go on the log line if one is written. */
  failed(fault: DatabaseFault, scope: string, fields?: Record<string, unknown>): void;
  /** A call succeeded: if the same procedure failed with DATABASE_UNAVAILABLE during an outage, the database is back. */
  succeeded(scope: string): void;
}

const MESSAGES: Record<DatabaseFault["reason"], string> = {
  [Reason.DATABASE_UNAVAILABLE]: "database unavailable",
  [Reason.DATABASE_TIMEOUT]: "database statement timed out",
  [Reason.LOCK_TIMEOUT]: "database row lock wait timed out",
};

const METRIC = "dependency_unavailable_total";

/** The counter on `registry`, created once however many callers ask for it. */
export function dependencyUnavailableCounter(registry?: Registry): Counter<"dependency" | "reason"> {
  const existing = registry?.getSingleMetric(METRIC);
  if (existing) return existing as Counter<"dependency" | "reason">;
  return new Counter({
    name: METRIC,
    help: "Calls answered UNAVAILABLE because a dependency could not serve them, by dependency and ErrorInfo reason",
    labelNames: ["dependency", "reason"],
    registers: registry ? [registry] : [],
  });
}

/**
 * Database failures logged once per burst, not once per call: during a
 * restart every call fails the same way, and a line per call (with a stack)
 * buries everything else. Every failure increments
 * dependency_unavailable_total{dependency="database",reason}; a warn line is
 * written for the first failure of each reason and then at most once per
 * window (with the count held back since the last); "database available
 * again" once a procedure that failed with DATABASE_UNAVAILABLE succeeds.
 *
 * Recovery is judged per procedure because a call that succeeded need not
 * have touched the database (IssueToken talks to Redis). Timeouts (statement,
 * lock) end no outage: other calls succeed beside them all the time.
 */
export function createDatabaseOutageLog(log: Logger, registry?: Registry, options: OutageLogOptions = {}): DatabaseOutageLog {
  const clock = options.clock ?? systemClock;
  const gate = createLogGate(options.windowMs ?? OUTAGE_LOG_WINDOW_MS, clock);
  const counter = dependencyUnavailableCounter(registry);
  let outage: { since: number; failures: number; procedures: Set<string>; logged: boolean } | undefined;
  /** "available again" was said: the next outage must be said too, or the log claims a recovery that did not last. */
  let saidBack = false;
  return {
    failed(fault, scope, fields = {}) {
      counter.inc({ dependency: "database", reason: fault.reason });
      const now = clock.now().getTime();
      let verdict = gate(fault.reason);
      // A new outage right after a logged recovery (a flap, then the real
      // thing) is said once more per window; further flaps are only counted.
      if (!verdict.pass && !outage && saidBack && fault.reason === Reason.DATABASE_UNAVAILABLE) {
        const again = gate(`again:${fault.reason}`);
        if (again.pass) verdict = { pass: true, suppressed: 0 };
      }
      if (verdict.pass) {
        log.warn({ ...fields, dependency: "database", reason: fault.reason, kind: fault.kind, suppressed: verdict.suppressed }, MESSAGES[fault.reason]);
      }
      if (fault.reason !== Reason.DATABASE_UNAVAILABLE) return;
      outage ??= { since: now, failures: 0, procedures: new Set(), logged: false };
      outage.failures++;
      outage.procedures.add(scope);
      if (verdict.pass) outage.logged = true;
    },
    succeeded(scope) {
      if (!outage?.procedures.has(scope)) return;
      const { since, failures, logged } = outage;
      outage = undefined;
      // A short flap whose start was not logged (inside the window) ends unlogged as well.
      if (logged) log.info({ dependency: "database", failures, unavailableMs: clock.now().getTime() - since }, "database available again");
      saidBack = logged;
    },
  };
}
