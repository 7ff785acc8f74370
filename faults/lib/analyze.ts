/**
 * Figures from the clients' attempt records: calls by outcome, the
 * unavailability window of a fault, whether calls succeeded again by
 * themselves after it, and what happened to buyers' places in the queue.
 */
import { isAmbiguous, isInfraFailure, TOKEN_LOST_REASONS, type Attempt } from "./attempts";

export interface FaultWindow {
  /** Epoch ms the fault was injected. */
  start: number;
  /** Epoch ms the fault was over (the broken piece back, or the frozen one resumed). */
  end: number;
  /** Other instants worth analysing (e.g. sigtermAt). */
  marks: Record<string, number>;
  /** What the scenario observed itself (exit codes, drain times, ...). */
  notes: Record<string, string | number | boolean>;
}

export interface CallFigures {
  attempted: number;
  ok: number;
  failed: number;
  /** "CODE" or "CODE REASON" -> attempts. */
  failedBy: Record<string, number>;
  /** Per RPC: attempted / ok. */
  byRpc: Record<string, { attempted: number; ok: number }>;
  byProtocol: Record<string, { attempted: number; ok: number }>;
  /** Logical calls that needed a retry, and retries made. */
  retried: number;
  retries: number;
}

export interface Availability {
  /** Infrastructure failures (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED, transport, INTERNAL) of the fault: from its start until the system recovered. */
  faultFailures: number;
  /** Infrastructure failures before the fault (should be 0). */
  failuresBefore: number;
  /** Infrastructure failures after the system had recovered (after a quiet spell of QUIET_MS): noise, or a later relapse. */
  strayFailures: number;
  /** First to last of those failures, ms (0 when none): the unavailability window. */
  windowMs: number;
  /** How long after the fault's end its failures went on, ms. */
  failingAfterEndMs: number;
  /** The slowest OK call in flight during the fault, ms: a fault can also show as waiting rather than failing. */
  slowestOkDuringFaultMs: number;
  /** Calls of every kind succeeded on every instance after that, and went on succeeding. */
  recovered: boolean;
  /** Why not, when not. */
  notRecoveredBecause?: string;
}

export interface QueueFigures {
  /** Tokens the client saw live (WAITING/ACTIVE) that the server later called expired or unknown, without a payment that could explain it. */
  placesLost: number;
  /** Buyers affected by the above. */
  buyersWhoLostPlace: number;
  /** Tokens ended by a payment whose answer never arrived: the retry with the same key meets QUEUE_TOKEN_EXPIRED at the gate. */
  endedByUnansweredPayment: number;
  /** Tokens whose WAITING position went up between two answers (someone got ahead). */
  movedBack: number;
  /** Tokens that were ACTIVE (admitted) and later WAITING again: the buyer was sent back into the line. */
  demoted: number;
}

/** "CODE REASON", plus a state from the ErrorInfo metadata when there is one (SEAT_UNAVAILABLE: held, sold or locked). */
export function failureKey(a: Pick<Attempt, "code" | "reason" | "detail">): string {
  let state: string | undefined;
  try {
    state = a.detail ? (JSON.parse(a.detail) as Record<string, string>).state : undefined;
  } catch {
    /* cut short */
  }
  return `${a.code}${a.reason ? ` ${a.reason}` : ""}${state ? ` (${state})` : ""}`;
}

export function callFigures(attempts: Attempt[]): CallFigures {
  const f: CallFigures = { attempted: 0, ok: 0, failed: 0, failedBy: {}, byRpc: {}, byProtocol: {}, retried: 0, retries: 0 };
  for (const a of attempts) {
    f.attempted++;
    f.byRpc[a.rpc] ??= { attempted: 0, ok: 0 };
    f.byProtocol[a.protocol] ??= { attempted: 0, ok: 0 };
    const rpc = f.byRpc[a.rpc];
    const proto = f.byProtocol[a.protocol];
    rpc.attempted++;
    proto.attempted++;
    if (a.code === "OK") {
      f.ok++;
      rpc.ok++;
      proto.ok++;
    } else {
      f.failed++;
      const k = failureKey(a);
      f.failedBy[k] = (f.failedBy[k] ?? 0) + 1;
    }
    if (a.retry > 0) f.retries++;
    if (a.retry === 1) f.retried++;
  }
  return f;
}

/** RPCs a buyer's round needs; after a fault each must succeed again on every live instance. */
const CORE_RPCS = ["IssueToken", "HoldSeat", "ChargeBalance", "PayReservation"] as const;

/**
 * Failures after the fault's end belong to it while they keep coming: a run of
 * failures with gaps shorter than this. A failure after a longer quiet spell
 * is a stray (counted, reported), not the fault still going on.
 */
const QUIET_MS = 2000;

export function availability(attempts: Attempt[], w: FaultWindow, o: { instances: number; recoveryWindowMs: number; loadEnd: number }): Availability {
  const infra = attempts.filter(isInfraFailure).sort((a, b) => a.start - b.start);
  const fromFault = infra.filter((a) => a.end >= w.start);
  let recoveredAt = w.end;
  let strays = 0;
  const ofFault: Attempt[] = [];
  for (const a of fromFault) {
    // Sorted by start: once one failure comes after a quiet spell, so do all later ones.
    if (a.start > recoveredAt + QUIET_MS) {
      strays++;
      continue;
    }
    ofFault.push(a);
    recoveredAt = Math.max(recoveredAt, a.end);
  }
  const windowMs = ofFault.length ? Math.max(...ofFault.map((a) => a.end)) - ofFault[0].start : 0;
  const failingAfterEndMs = recoveredAt - w.end;
  let notRecoveredBecause: string | undefined;
  if (failingAfterEndMs > o.recoveryWindowMs)
    notRecoveredBecause = `calls still failed ${failingAfterEndMs} ms after the fault ended (limit ${o.recoveryWindowMs} ms)`;
  else if (o.loadEnd - recoveredAt < QUIET_MS) notRecoveredBecause = "calls failed until the load ended";
  else if (strays > Math.max(3, 0.01 * attempts.filter((a) => a.start >= recoveredAt).length))
    notRecoveredBecause = `${strays} failures came back after a quiet spell (more than 3 and 1 % of the calls after it)`;
  else {
    const okAfter = attempts.filter((a) => a.code === "OK" && a.start >= recoveredAt);
    const missing: string[] = [];
    for (const rpc of CORE_RPCS) if (!okAfter.some((a) => a.rpc === rpc)) missing.push(rpc);
    for (let i = 0; i < o.instances; i++) if (!okAfter.some((a) => a.instance === i)) missing.push(`instance ${"AB"[i] ?? i}`);
    if (missing.length) notRecoveredBecause = `no OK after the last failure for ${missing.join(", ")}`;
  }
  const okDuring = attempts.filter((a) => a.code === "OK" && a.end >= w.start && a.start <= w.end);
  return {
    faultFailures: ofFault.length,
    failuresBefore: infra.length - fromFault.length,
    strayFailures: strays,
    windowMs,
    failingAfterEndMs,
    slowestOkDuringFaultMs: okDuring.length ? Math.max(...okDuring.map((a) => a.end - a.start)) : 0,
    recovered: !notRecoveredBecause,
    notRecoveredBecause,
  };
}

export function queueFigures(attempts: Attempt[]): QueueFigures {
  // One ticket may go by several tokens (a server may sign a new one at admission): an answer
  // that hands back another token than the one sent joins the two.
  const ticketOf = new Map<string, string>();
  const ticket = (t: string) => ticketOf.get(t) ?? t;
  const ordered = [...attempts].sort((x, y) => x.start - y.start);
  for (const a of ordered) if (a.token && a.ok?.token && a.ok.token !== a.token && !ticketOf.has(a.ok.token)) ticketOf.set(a.ok.token, ticket(a.token));
  const byToken = new Map<string, Attempt[]>();
  for (const a of ordered) {
    const t = a.token ?? a.ok?.token;
    if (!t) continue;
    const k = `${a.buyer} ${ticket(t)}`;
    byToken.set(k, [...(byToken.get(k) ?? []), a]);
  }
  const q: QueueFigures = { placesLost: 0, buyersWhoLostPlace: 0, endedByUnansweredPayment: 0, movedBack: 0, demoted: 0 };
  const losers = new Set<string>();
  for (const list of byToken.values()) {
    list.sort((x, y) => x.start - y.start);
    let live = false;
    let paid = false;
    let payUnanswered = false;
    let lastPosition: number | undefined;
    let movedBack = false;
    let admitted = false;
    let demoted = false;
    for (const a of list) {
      const status = a.code === "OK" ? a.ok?.queueStatus : undefined;
      const gone =
        status === "EXPIRED" || (a.code !== "OK" && !!a.reason && TOKEN_LOST_REASONS.has(a.reason)) || (a.rpc === "GetQueueStatus" && a.code === "NOT_FOUND");
      if (gone) {
        if (live && !paid) {
          if (payUnanswered) q.endedByUnansweredPayment++;
          else {
            q.placesLost++;
            losers.add(a.buyer);
          }
        }
        break;
      }
      if (status === "WAITING" || status === "ACTIVE" || (a.code === "OK" && a.rpc !== "GetQueueStatus" && a.rpc !== "IssueToken")) live = true;
      if (status === "ACTIVE" || (a.code === "OK" && a.rpc !== "GetQueueStatus" && a.rpc !== "IssueToken")) admitted = true;
      if (admitted && (status === "WAITING" || a.reason === "QUEUE_TOKEN_WAITING")) demoted = true;
      if (status === "WAITING") {
        if (lastPosition !== undefined && a.ok!.position! > lastPosition) movedBack = true;
        lastPosition = a.ok!.position;
      }
      if (a.rpc === "PayReservation") {
        if (a.code === "OK") paid = true;
        else if (isAmbiguous(a.code, a.reason)) payUnanswered = true;
      }
    }
    if (movedBack) q.movedBack++;
    if (demoted) q.demoted++;
  }
  q.buyersWhoLostPlace = losers.size;
  return q;
}
