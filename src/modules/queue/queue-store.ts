import { randomInt } from "node:crypto";

/**
 * Where the waiting room lives. Two implementations keep the same contract
 * (test/queue/queue-store.contract.test.ts runs one suite against both): Redis for
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
  /** The store's generation when it answered (see TicketOrigin). */
  generation: number;
  /** This call put the ticket back from its token: the store had lost it. */
  restored?: boolean;
}

/** What `issue` answers: the ticket, and what its WAITING token needs. */
export interface IssuedTicket extends StoredTicket {
  /** The minute the ticket was issued (ms; 0: unknown, a ticket from before tokens carried it). */
  issuedAt: number;
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
  /** What the token says about its ticket; absent in tokens of the previous format (q1). */
  origin?: TicketOrigin;
}

/**
 * A store has a generation: a random id made when it started empty, kept
 * with the data, so an empty restart (or a wipe) starts a new one. A ticket missing
 * from the generation its token was signed in has expired; missing from a
 * later one, it was lost with the data, and its token can put it back (see
 * RestorePolicy). A WAITING token says when its ticket was issued, an ACTIVE
 * one (signed again at admission) when its booking window ends.
 */
export type TicketOrigin = { generation: number; state: "WAITING"; issuedAt: number } | { generation: number; state: "ACTIVE"; activeUntil: number };

/**
 * When a token of an older generation puts its lost ticket back: a WAITING
 * one at its own place in line (by ticket number), an ACTIVE one ACTIVE until
 * its window ends (WAITING at its place when the room is full). Only within
 * `windowMs` of the new generation's start (a buyer still there polls within
 * the idle TTLs), only once per ticket in a generation (once back, a missing
 * ticket has expired), and a WAITING one only if issued within `maxAgeMs`.
 */
export interface RestorePolicy {
  maxActive: number;
  /** A restored ACTIVE ticket's idle deadline is this long after it came back. */
  activeIdleTtlMs: number;
  windowMs: number;
  maxAgeMs: number;
}

/** The shared token secrets: `signing` signs, all of `all` (signing first) verify. */
export interface TokenSecrets {
  signing: Buffer;
  all: Buffer[];
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
  /**
   * Admissions since the store's data began, by every instance sharing it:
   * the difference between two rounds is what the line moved in between.
   * Starts over with a new generation.
   */
  admittedTotal: number;
  /**
   * When the next ACTIVE slot frees at the latest, as known now: the earliest
   * of every ACTIVE ticket's window end and idle deadline (a gated call may
   * still push an idle deadline back). Undefined with nobody ACTIVE.
   */
  nextSlotFreeAt?: number;
  /** Changes whenever a position or state may have changed for someone. */
  version: number;
  generation: number;
}

export interface QueueStore {
  readonly kind: "redis" | "memory";
  /** The user's live ticket, or a new one at the back. Atomic per user. */
  issue(userId: string, now: number, idleTtlMs: number): Promise<IssuedTicket>;
  /**
   * States of several tickets at once, recording `touch`. A stale ref reads EXPIRED, and so does an idle ACTIVE one.
   * With `restore`, a ref whose ticket the store lost is put back first, as the policy allows.
   */
  status(refs: TicketRef[], now: number, idleTtlMs: number, touch: StatusTouch, restore?: RestorePolicy): Promise<StoredTicket[]>;
  /** One admission round: expire (window over or idle), drop idle waiting, admit from the head within both bounds. Atomic. */
  admit(now: number, limits: AdmissionLimits): Promise<AdmissionRound>;
  /** Ends a ticket at once (after payment). False when it was not live. */
  expire(ref: TicketRef): Promise<boolean>;
  /**
   * The shared token secrets. Where the store has none (new, or emptied) `candidate` becomes the signing one; every
   * secret in `known` (those this instance signed with) is kept for verifying, so tokens signed before the store lost
   * its secret keep verifying on every instance, whichever secret wins.
   */
  syncTokenSecrets(candidate: Buffer, known: Buffer[]): Promise<TokenSecrets>;
  /** The signing secret now (created if there is none): for tools that mint tokens. */
  tokenSecret(): Promise<Buffer>;
}

/** The id a new generation gets if a call starts one: random, so two generations never share one. */
export const newGenerationId = (): number => randomInt(1, 2 ** 48);
