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

/**
 * What a status read records besides reading. `false`: nothing (a look).
 * `true`: the user is still there (a poll, an open stream), which keeps a
 * WAITING ticket in line. `{ activeIdleTtlMs }`: a gated call, which keeps an
 * ACTIVE ticket's slot that long again; nothing else counts as using a slot,
 * so a buyer who walked away with a stream open still gives it back.
 */
export type StatusTouch = boolean | { activeIdleTtlMs: number };

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
  /** An ACTIVE ticket with no gated call for this long gives its slot back (admission counts as one). */
  activeIdleTtlMs: number;
  idleTtlMs: number;
  /** Waiting tickets checked for idleness per round. */
  sweepBatch: number;
}

export interface AdmissionRound {
  admitted: number;
  /** ACTIVE tickets whose window ran out this round. */
  expiredActive: number;
  /** ACTIVE tickets that made no gated call for `activeIdleTtlMs`. */
  expiredIdleActive: number;
  /** WAITING tickets dropped for not being polled or streamed. */
  droppedIdle: number;
  waiting: number;
  active: number;
  /** Admissions in the last `rateWindowMs`, for the observed admission rate. */
  recentAdmissions: number;
  rateWindowMs: number;
  /**
   * When the next ACTIVE slot frees at the latest, as known now: the earliest
   * of every ACTIVE ticket's window end and idle deadline (a gated call may
   * still push an idle deadline back). Undefined with nobody ACTIVE.
   */
  nextSlotFreeAt?: number;
  /** Changes whenever a position or state may have changed for someone. */
  version: number;
}

export interface QueueStore {
  readonly kind: "redis" | "memory";
  /** The user's live ticket, or a new one at the back. Atomic per user. */
  issue(userId: string, now: number, idleTtlMs: number): Promise<StoredTicket>;
  /** States of several tickets at once, recording `touch`. A stale ref reads EXPIRED, and so does an idle ACTIVE one. */
  status(refs: TicketRef[], now: number, idleTtlMs: number, touch: StatusTouch): Promise<StoredTicket[]>;
  /** One admission round: expire (window over or idle), drop idle waiting, admit from the head within both bounds. Atomic. */
  admit(now: number, limits: AdmissionLimits): Promise<AdmissionRound>;
  /** Ends a ticket at once (after payment). False when it was not live. */
  expire(ref: TicketRef): Promise<boolean>;
  /** The shared signing secret for tokens (created once per store). */
  tokenSecret(): Promise<Buffer>;
}

export const RATE_WINDOW_MS = 60_000;
