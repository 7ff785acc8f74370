/**
 * Where the waiting room lives. Two implementations keep the same contract
 * (test/queue/queue-store.contract.ts runs one suite against both): Redis for
 * any number of server instances, and a single-process store for the embedded
 * default. Times are epoch milliseconds from the injected clock.
 */

export type TicketState = "WAITING" | "ACTIVE" | "EXPIRED";

/** A user's place: `seq` is the ticket number that, signed, forms the token. */
export interface StoredTicket {
  userId: string;
  seq: number;
  state: TicketState;
  /** People ahead while WAITING, else -1. */
  position: number;
  /** ACTIVE: end of the booking window. WAITING: when it is dropped unless seen again. */
  expiresAt: number;
}

export interface TicketRef {
  userId: string;
  seq: number;
}

export interface AdmissionLimits {
  maxActive: number;
  admitPerSecond: number;
  /** Admissions allowed at once after a quiet spell (at least 1). */
  burst: number;
  activeTtlMs: number;
  idleTtlMs: number;
  /** Waiting tickets checked for idleness per round. */
  sweepBatch: number;
}

export interface AdmissionRound {
  admitted: number;
  /** ACTIVE tickets whose window ran out this round. */
  expiredActive: number;
  /** WAITING tickets dropped for not being polled or streamed. */
  droppedIdle: number;
  waiting: number;
  active: number;
  /** Admissions in the last `rateWindowMs`, for the observed admission rate. */
  recentAdmissions: number;
  rateWindowMs: number;
  /** Changes whenever a position or state may have changed for someone. */
  version: number;
}

export interface QueueStore {
  readonly kind: "redis" | "memory";
  /** The user's live ticket, or a new one at the back. Atomic per user. */
  issue(userId: string, now: number, idleTtlMs: number): Promise<StoredTicket>;
  /** States of several tickets at once; `touch` keeps WAITING ones in line. A stale ref reads EXPIRED. */
  status(refs: TicketRef[], now: number, idleTtlMs: number, touch: boolean): Promise<StoredTicket[]>;
  /** One admission round: expire, drop idle, admit from the head within both bounds. Atomic. */
  admit(now: number, limits: AdmissionLimits): Promise<AdmissionRound>;
  /** Ends a ticket at once (after payment). False when it was not live. */
  expire(ref: TicketRef): Promise<boolean>;
  /** The shared signing secret for tokens (created once per store). */
  tokenSecret(): Promise<Buffer>;
}

export const RATE_WINDOW_MS = 60_000;
