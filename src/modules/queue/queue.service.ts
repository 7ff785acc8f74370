import { Code } from "@connectrpc/connect";
import type { Clock } from "../../platform/clock.js";
import { domainError, failedPrecondition, notFound } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { Reason } from "../../platform/reasons.js";
import type { AdmissionLimits, AdmissionRound, IssuedTicket, QueueStore, RestorePolicy, StatusTouch, StoredTicket, TicketRef } from "./queue-store.js";
import { createAdmissionRate, RATE_HALF_LIFE_ROUNDS, type AdmissionRate } from "./admission-rate.js";
import { signToken, verifyToken } from "./queue-token.js";
import { waitingTicketDetail } from "./queue.mapping.js";
import type { Ticket } from "./ticket.js";
import { fixedKeyRing, sharedKeyRing, type TokenKeyRing } from "./token-keys.js";

export interface QueueSettings {
  maxActive: number;
  admitPerSecond: number;
  activeTtlMs: number;
  /** An ACTIVE user with no gated call for this long gives the slot back. */
  activeIdleTtlMs: number;
  idleTtlMs: number;
  tickMs: number;
  /** A stream gets a position-only update at most this often; state changes go out at once. */
  streamPositionIntervalMs: number;
  /** Open WatchQueueStatus streams one ticket may hold on this instance. */
  maxStreamsPerToken: number;
  /** QUEUE_TOKEN_SECRETS: the first signs, all verify. Unset: a secret shared through the store. */
  tokenSecrets?: Buffer[];
  /** A WAITING token issued longer ago than this is not put back after the store lost its data. */
  restoreMaxAgeMs?: number;
}

/** Without QUEUE_RESTORE_MAX_AGE (tests that build settings by hand). */
const RESTORE_MAX_AGE_MS = 6 * 3_600_000;

/**
 * Decides whether the caller may use a token of `userId`; throws to refuse.
 * Runs after the signature is verified and before anything is read or touched.
 */
export type AuthorizeTokenUser = (userId: string) => void;

export type { Ticket } from "./ticket.js";

export interface QueueObserver {
  onRound(round: AdmissionRound): void;
  onExpiredByPayment(): void;
  /** Tickets put back from their tokens after the store lost its data. */
  onRestored(count: number): void;
}

/** A stream subscriber: gets the ticket whenever it changes. */
interface Watcher {
  ref: TicketRef;
  last?: string;
  lastState: StoredTicket["state"];
  /** Clock time of the last message sent. */
  lastSentAt: number;
  push(ticket: Ticket): void;
}

/** How often open streams refresh their users' last-seen even if nothing moved. */
const KEEPALIVE_EVERY_MS = 15_000;

/**
 * The waiting room: issues signed tokens, reports positions, admits from the
 * head on a tick, and fans changes out to this instance's open streams with
 * one batched store call per tick (never one poll per stream).
 */
export class Queue {
  private readonly keys: TokenKeyRing;
  /** The store's generation as last seen: a change means it lost its data. */
  private generation?: number;
  private readonly restore: RestorePolicy;
  private readonly watchers = new Map<string, Set<Watcher>>();
  /** Open streams per ticket number (unique within a queue, one per token). */
  private readonly streamsPerTicket = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<unknown>;
  private seenVersion = -1;
  /** Some stream has a position update held back by the interval: refresh again next round. */
  private heldBack = false;
  private lastKeepalive = 0;
  private readonly admissionRate: AdmissionRate;
  /** Set while the last round found the room full: when its first slot frees at the latest known. */
  private fullUntil?: number;
  private readonly limits: AdmissionLimits;

  constructor(
    readonly store: QueueStore,
    private readonly clock: Clock,
    private readonly settings: QueueSettings,
    private readonly log: Logger,
    private readonly observer?: QueueObserver,
  ) {
    this.admissionRate = createAdmissionRate(RATE_HALF_LIFE_ROUNDS * settings.tickMs);
    this.limits = {
      maxActive: settings.maxActive,
      admitPerSecond: settings.admitPerSecond,
      burst: Math.max(1, Math.ceil((settings.admitPerSecond * settings.tickMs) / 1000)),
      activeTtlMs: settings.activeTtlMs,
      activeIdleTtlMs: settings.activeIdleTtlMs,
      idleTtlMs: settings.idleTtlMs,
      sweepBatch: 2000,
    };
    // A buyer still there polls (or makes a gated call) within the idle TTLs of the store coming back.
    this.restore = {
      maxActive: settings.maxActive,
      activeIdleTtlMs: settings.activeIdleTtlMs,
      windowMs: Math.max(settings.idleTtlMs, settings.activeIdleTtlMs),
      maxAgeMs: settings.restoreMaxAgeMs ?? RESTORE_MAX_AGE_MS,
    };
    if (settings.tokenSecrets?.length) this.keys = fixedKeyRing(settings.tokenSecrets);
    else {
      // Sync cadence and re-read limits are about the network, not business time: the real clock.
      this.keys = sharedKeyRing(store, () => performance.now());
      if (store.kind === "redis")
        log.warn(
          "QUEUE_TOKEN_SECRETS is not set: queue tokens are signed with a secret kept in Redis; set QUEUE_TOKEN_SECRETS so tokens outlive the loss of Redis's data",
        );
    }
  }

  async issueToken(userId: string): Promise<Ticket> {
    const stored = await this.store.issue(userId, this.now(), this.settings.idleTtlMs);
    this.seen(stored);
    const { signing } = await this.keys.keys();
    return this.present(stored, this.tokenOf(signing, stored, { userId, seq: stored.seq, origin: waitingOrigin(stored) }));
  }

  /** A token's state; a token we never signed is NOT_FOUND. Polling keeps a waiting token in line. */
  async getStatus(token: string, authorize?: AuthorizeTokenUser): Promise<Ticket> {
    return this.poll(await this.knownRef(token, authorize));
  }

  /**
   * The gate's check: the caller's ticket if ACTIVE, else the refusal to send.
   * An ACTIVE ticket's use is recorded in the same store call (it keeps the
   * slot); a waiting one is not touched: only polling and streams keep it alive.
   */
  async admitCaller(token: string | null, authorize?: AuthorizeTokenUser): Promise<Ticket> {
    if (!token) throw failedPrecondition(Reason.QUEUE_TOKEN_MISSING, "this call needs an x-queue-token from QueueService.IssueToken");
    const ref = await this.parse(token);
    if (!ref) throw failedPrecondition(Reason.QUEUE_TOKEN_INVALID, "the queue token is not valid");
    authorize?.(ref.userId);
    const use = { activeIdleTtlMs: this.settings.activeIdleTtlMs };
    const [stored] = await this.status([ref], use);
    // The gate hands on the token it was given (payment ends the ticket with it): no signing per gated call.
    const ticket = this.present(stored, token);
    if (ticket.state === "EXPIRED") throw failedPrecondition(Reason.QUEUE_TOKEN_EXPIRED, "the queue token has expired; ask for a new one");
    if (ticket.state === "WAITING") {
      const metadata: Record<string, string> = { position: String(ticket.position) };
      throw failedPrecondition(Reason.QUEUE_TOKEN_WAITING, `still waiting in the queue: ${ticket.position} ahead`, metadata, [waitingTicketDetail(ticket)]);
    }
    return ticket;
  }

  /** Ends the token at once; PayReservation calls this after its transaction commits. */
  async expireAfterPayment(token: string): Promise<void> {
    const ref = await this.parse(token);
    if (ref && (await this.store.expire(ref))) {
      this.observer?.onExpiredByPayment();
      this.seenVersion = -1;
    }
  }

  /**
   * The ticket now and on every change, until it expires or `signal` aborts.
   * A ticket over its stream limit on this instance is refused before the
   * first message; the place frees when the stream ends, however it ends.
   */
  async *watch(token: string, signal: AbortSignal, authorize?: AuthorizeTokenUser): AsyncGenerator<Ticket> {
    const ref = await this.knownRef(token, authorize);
    const release = this.claimStream(ref);
    try {
      yield* this.follow(ref, signal);
    } finally {
      release();
    }
  }

  /**
   * Counts a stream against its ticket's limit. Claimed with no await between
   * the check and the count, so concurrent opens cannot all slip under it.
   */
  private claimStream(ref: TicketRef): () => void {
    const limit = this.settings.maxStreamsPerToken;
    const open = this.streamsPerTicket.get(ref.seq) ?? 0;
    if (open >= limit)
      throw domainError(Code.ResourceExhausted, Reason.QUEUE_STREAMS_EXCEEDED, `this queue token already has ${limit} open streams; close one first`, {
        limit: String(limit),
      });
    this.streamsPerTicket.set(ref.seq, open + 1);
    return () => {
      const left = this.streamsPerTicket.get(ref.seq)! - 1;
      if (left > 0) this.streamsPerTicket.set(ref.seq, left);
      else this.streamsPerTicket.delete(ref.seq);
    };
  }

  private async *follow(ref: TicketRef, signal: AbortSignal): AsyncGenerator<Ticket> {
    const first = await this.poll(ref);
    const firstSentAt = this.now();
    yield first;
    if (first.state === "EXPIRED") return;
    const pending: Ticket[] = [];
    let wake: (() => void) | undefined;
    const watcher: Watcher = {
      ref,
      last: fingerprint(first),
      lastState: first.state,
      lastSentAt: firstSentAt,
      push(t) {
        pending.push(t);
        wake?.();
      },
    };
    const set = this.watchers.get(ref.userId) ?? new Set();
    set.add(watcher);
    this.watchers.set(ref.userId, set);
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        while (pending.length) {
          const t = pending.shift()!;
          yield t;
          if (t.state === "EXPIRED") return;
        }
        if (signal.aborted) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      set.delete(watcher);
      if (set.size === 0) this.watchers.delete(ref.userId);
    }
  }

  /** Streams open on this instance, counted from their claim (before the first message) to their end. */
  get openStreams(): number {
    let n = 0;
    for (const count of this.streamsPerTicket.values()) n += count;
    return n;
  }

  /** Starts the admission loop. Every instance runs one; the store keeps them within bounds together. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (!this.ticking) this.ticking = this.tick().finally(() => (this.ticking = undefined));
    }, this.settings.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** One round: admit, then refresh open streams if anything moved. Exposed for tests. */
  async tick(): Promise<AdmissionRound | undefined> {
    const synced = await this.keys.maintain().then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      const round = await this.store.admit(this.now(), this.limits);
      // Reported only when the store answers the round: an outage is reported once per round below.
      if (synced) this.log.warn({ err: synced }, "queue token secrets could not be synced");
      this.seen(round);
      this.admissionRate.observe(round, this.now());
      this.fullUntil = round.active >= this.settings.maxActive ? round.nextSlotFreeAt : undefined;
      this.observer?.onRound(round);
      await this.refreshWatchers(round.version);
      return round;
    } catch (err) {
      this.log.warn({ err }, "queue admission round failed");
      return undefined;
    }
  }

  private async refreshWatchers(version: number): Promise<void> {
    if (this.watchers.size === 0) return;
    const now = this.now();
    const keepalive = now - this.lastKeepalive >= Math.min(KEEPALIVE_EVERY_MS, this.settings.idleTtlMs / 4);
    if (version === this.seenVersion && !keepalive && !this.heldBack) return;
    this.seenVersion = version;
    this.heldBack = false;
    if (keepalive) this.lastKeepalive = now;
    const all = [...this.watchers.values()].flatMap((s) => [...s]);
    const stored = await this.status(
      all.map((w) => w.ref),
      true,
    );
    const { signing } = await this.keys.keys();
    // Every round moves everyone's position; sending all of them every round
    // costs more than the line itself. Positions go out at most once per
    // interval per stream; admission and expiry go out at once. The token is
    // signed only for what goes out.
    stored.forEach((s, i) => {
      const w = all[i];
      const t = this.present(s, "");
      const f = fingerprint(t);
      if (f === w.last) return;
      if (t.state === w.lastState && now - w.lastSentAt < this.settings.streamPositionIntervalMs) {
        this.heldBack = true;
        return;
      }
      w.last = f;
      w.lastState = t.state;
      w.lastSentAt = now;
      t.token = this.tokenOf(signing, s, w.ref);
      w.push(t);
    });
  }

  /** The store's answer, putting back tickets it lost; a new generation is logged once. */
  private async status(refs: TicketRef[], touch: StatusTouch): Promise<StoredTicket[]> {
    const stored = await this.store.status(refs, this.now(), this.settings.idleTtlMs, touch, this.restore);
    if (stored.length) this.seen(stored[0]);
    const restored = stored.filter((s) => s.restored).length;
    if (restored) this.observer?.onRestored(restored);
    return stored;
  }

  private seen({ generation }: { generation: number }): void {
    if (this.generation !== undefined && generation !== this.generation)
      this.log.warn(
        { previous: this.generation, generation },
        "the queue's store lost its data and started over: tickets are put back as their tokens come back",
      );
    this.generation = generation;
  }

  /**
   * The token to hand out with a ticket. Once ACTIVE, a token that says when
   * the booking window ends, so the ticket can come back ACTIVE until then if
   * the store loses it; otherwise the token presented, under the current
   * signing key (the same string unless the key changed since it was signed).
   * Clients keep the newest token they were given.
   */
  private tokenOf(signing: Buffer, s: StoredTicket, ref: TicketRef): string {
    if (s.state === "ACTIVE")
      return signToken(signing, { userId: s.userId, seq: s.seq, origin: { generation: s.generation, state: "ACTIVE", activeUntil: s.expiresAt } });
    return signToken(signing, ref);
  }

  /** A token signed by any current key; on a miss the shared keys are read again once (another instance may have added one). */
  private async parse(token: string): Promise<TicketRef | undefined> {
    const ref = verifyToken((await this.keys.keys()).verifying, token);
    if (ref) return ref;
    const fresh = await this.keys.reload();
    return fresh && verifyToken(fresh.verifying, token);
  }

  /** The ticket a token names, once the caller may use it; a token we never signed is NOT_FOUND. */
  private async knownRef(token: string, authorize?: AuthorizeTokenUser): Promise<TicketRef> {
    const ref = await this.parse(token);
    if (!ref) throw notFound(Reason.QUEUE_TOKEN_INVALID, "unknown queue token");
    authorize?.(ref.userId);
    return ref;
  }

  /** A poll: the ticket's state, keeping it in line if it waits. */
  private async poll(ref: TicketRef): Promise<Ticket> {
    const [stored] = await this.status([ref], true);
    return this.present(stored, this.tokenOf((await this.keys.keys()).signing, stored, ref));
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private present(s: StoredTicket, token: string): Ticket {
    if (s.state === "ACTIVE") return { token, userId: s.userId, state: s.state, position: 0, expiresAt: new Date(s.expiresAt) };
    if (s.state === "EXPIRED") return { token, userId: s.userId, state: s.state, position: 0 };
    return {
      token,
      userId: s.userId,
      state: s.state,
      position: s.position,
      estimatedWaitMs: this.estimateWait(s.position),
      expiresAt: new Date(s.expiresAt),
    };
  }

  /**
   * People ahead divided by the admission rate the line moves at now (see
   * AdmissionRate); before any round has seen people waiting, the configured
   * rate. Never slower than the room must turn over: every slot frees within
   * QUEUE_ACTIVE_TTL, so a room full for long still gives a finite wait. With
   * the room full nobody goes in before a slot frees, however fast the burst
   * that filled it was: then the wait is at least until the first known slot
   * frees, plus the people ahead at the rate.
   */
  private estimateWait(position: number): number {
    const { admitPerSecond, maxActive, activeTtlMs } = this.settings;
    const slowest = Math.min(admitPerSecond / 1000, maxActive / activeTtlMs);
    const rate = Math.max(this.admissionRate.perMs ?? admitPerSecond / 1000, slowest);
    const byRate = Math.ceil((position + 1) / rate);
    if (this.fullUntil === undefined) return byRate;
    const untilFree = Math.max(0, this.fullUntil - this.now());
    return Math.max(byRate, untilFree + Math.ceil(position / rate));
  }
}

/** Changes worth a stream message: state, position, expiry (not the estimate alone). */
function fingerprint(t: Ticket): string {
  return `${t.state}|${t.position}|${t.expiresAt?.getTime() ?? 0}`;
}

function waitingOrigin(t: IssuedTicket): TicketRef["origin"] {
  return { generation: t.generation, state: "WAITING", issuedAt: t.issuedAt };
}
