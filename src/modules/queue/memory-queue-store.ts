import { randomBytes } from "node:crypto";
import {
  newGenerationId,
  type AdmissionLimits,
  type AdmissionRound,
  type IssuedTicket,
  type QueueStore,
  type RestorePolicy,
  type StoredTicket,
  type TicketRef,
} from "./queue-store.js";

/**
 * Counts of waiting tickets by ticket number (a Fenwick tree), so a position is
 * O(log n) however long the line is. Grows by doubling.
 */
class RankIndex {
  private tree = new Int32Array(1024);

  add(seq: number, delta: number): void {
    while (seq >= this.tree.length) this.grow();
    for (let i = seq; i < this.tree.length; i += i & -i) this.tree[i] += delta;
  }

  /** How many waiting tickets have a number below `seq`. */
  below(seq: number): number {
    let sum = 0;
    for (let i = Math.min(seq - 1, this.tree.length - 1); i > 0; i -= i & -i) sum += this.tree[i];
    return sum;
  }

  private grow(): void {
    const old = this.tree;
    const counts = new Int32Array(old.length);
    for (let i = 1; i < old.length; i++) counts[i] = this.below(i + 1) - this.below(i);
    this.tree = new Int32Array(old.length * 2);
    for (let i = 1; i < counts.length; i++) if (counts[i]) for (let j = i; j < this.tree.length; j += j & -j) this.tree[j] += counts[i];
  }
}

/** An ACTIVE ticket's hold on a slot: it ends at `until`, or at `usedUntil` without a gated call. */
interface Slot {
  until: number;
  usedUntil: number;
}

interface Entry {
  seq: number;
  /** Last poll or stream tick while waiting; 0 once active. */
  seen: number;
  /** The minute it was issued (ms), as its WAITING token says. */
  issuedAt: number;
  /** Set while active. */
  slot?: Slot;
}

const slotHeld = (slot: Slot, now: number) => slot.until > now && slot.usedUntil > now;
const minuteOf = (ms: number) => Math.floor(ms / 60_000) * 60_000;

/**
 * The waiting room of a single server process (the embedded default). Same
 * contract as Redis; its generation is the process, so tokens of an earlier
 * process (verifiable when QUEUE_TOKEN_SECRETS is set) put their tickets back.
 * Numbering cannot resume above the old process's: who joined after the
 * restart and before the old tickets came back may be ahead of them, and a
 * token whose number is taken in line again is not put back.
 */
export function createMemoryQueueStore(): QueueStore {
  const users = new Map<string, Entry>();
  /** Waiting users by ticket number. */
  const line = new Map<number, string>();
  const ranks = new RankIndex();
  const active = new Map<string, Slot>();
  let nextSeq = 1;
  let head = 1;
  let sweepCursor = 1;
  let tat = 0;
  let version = 0;
  let admittedTotal = 0;
  let generation: number | undefined;
  let generationStart = 0;
  const gen = (now: number) => {
    if (generation !== undefined) return;
    generation = newGenerationId();
    generationStart = now;
  };
  /** Ticket numbers put back from their tokens in this generation (each only once). */
  const restored = new Set<number>();
  let signing: Buffer | undefined;
  const secrets: Buffer[] = [];

  const leaveLine = (seq: number) => {
    if (line.delete(seq)) ranks.add(seq, -1);
  };
  const drop = (userId: string) => {
    const e = users.get(userId);
    if (!e) return;
    users.delete(userId);
    const wasActive = active.delete(userId);
    const wasWaiting = line.has(e.seq);
    leaveLine(e.seq);
    if (wasActive || wasWaiting) version++;
  };
  const lookup = (userId: string, now: number, idle: number): { e: Entry; st: "A" | "W" | "X" } | undefined => {
    const e = users.get(userId);
    if (!e) return undefined;
    if (e.slot) return { e, st: slotHeld(e.slot, now) ? "A" : "X" };
    if (e.seen > 0 && e.seen + idle > now && line.has(e.seq)) return { e, st: "W" };
    return { e, st: "X" };
  };
  const waitingTicket = (userId: string, e: Entry, idle: number): StoredTicket => ({
    userId,
    seq: e.seq,
    state: "WAITING",
    position: ranks.below(e.seq),
    expiresAt: e.seen + idle,
    generation: generation!,
  });
  const joinLine = (userId: string, e: Entry) => {
    users.set(userId, e);
    line.set(e.seq, userId);
    ranks.add(e.seq, 1);
  };
  /** The same rules as the Redis store's STATUS (see RestorePolicy). */
  const putBack = (ref: TicketRef, now: number, p: RestorePolicy): boolean => {
    const o = ref.origin;
    if (!o || o.generation === generation || now >= generationStart + p.windowMs) return false;
    if (o.state === "ACTIVE" ? o.activeUntil <= now : o.issuedAt <= 0 || o.issuedAt + p.maxAgeMs <= now) return false;
    // A new process numbers from 1 again: a number taken in line stays its holder's.
    if (restored.has(ref.seq) || line.has(ref.seq)) return false;
    restored.add(ref.seq);
    if (o.state === "ACTIVE" && active.size < p.maxActive) {
      const slot: Slot = { until: o.activeUntil, usedUntil: now + p.activeIdleTtlMs };
      users.set(ref.userId, { seq: ref.seq, seen: 0, issuedAt: 0, slot });
      active.set(ref.userId, slot);
    } else {
      joinLine(ref.userId, { seq: ref.seq, seen: now, issuedAt: o.state === "WAITING" ? o.issuedAt : 0 });
      head = Math.min(head, ref.seq);
    }
    nextSeq = Math.max(nextSeq, ref.seq + 1);
    version++;
    return true;
  };

  return {
    kind: "memory",
    async issue(userId, now, idle): Promise<IssuedTicket> {
      gen(now);
      const found = lookup(userId, now, idle);
      if (found?.st === "A")
        return { userId, seq: found.e.seq, state: "ACTIVE", position: -1, expiresAt: found.e.slot!.until, generation: generation!, issuedAt: found.e.issuedAt };
      if (found?.st === "W") {
        found.e.seen = now;
        return { ...waitingTicket(userId, found.e, idle), issuedAt: found.e.issuedAt };
      }
      if (found) drop(userId);
      const e: Entry = { seq: nextSeq++, seen: now, issuedAt: minuteOf(now) };
      joinLine(userId, e);
      return { ...waitingTicket(userId, e, idle), issuedAt: e.issuedAt };
    },

    async status(refs: TicketRef[], now, idle, touch, restore?: RestorePolicy) {
      gen(now);
      // Past the window nothing is put back any more: the record of what was can go.
      if (restore && restored.size && now >= generationStart + restore.windowMs) restored.clear();
      return refs.map((ref): StoredTicket => {
        let found = lookup(ref.userId, now, idle);
        const back = !found && restore !== undefined && putBack(ref, now, restore);
        if (back) found = lookup(ref.userId, now, idle);
        const answer = { userId: ref.userId, seq: ref.seq, generation: generation!, ...(back ? { restored: true } : {}) };
        if (!found || found.e.seq !== ref.seq) return { ...answer, state: "EXPIRED", position: -1, expiresAt: 0 };
        if (found.st === "A") {
          const slot = found.e.slot!;
          if (typeof touch === "object") slot.usedUntil = Math.max(slot.usedUntil, now + touch.activeIdleTtlMs);
          return { ...answer, state: "ACTIVE", position: -1, expiresAt: slot.until };
        }
        if (found.st === "X") {
          drop(ref.userId);
          return { ...answer, state: "EXPIRED", position: -1, expiresAt: 0 };
        }
        if (touch === true) found.e.seen = now;
        return { ...waitingTicket(ref.userId, found.e, idle), ...answer };
      });
    },

    async admit(now, l: AdmissionLimits): Promise<AdmissionRound> {
      gen(now);
      let expiredActive = 0;
      let expiredIdleActive = 0;
      for (const [userId, slot] of active) {
        if (slotHeld(slot, now)) continue;
        active.delete(userId);
        users.delete(userId);
        if (slot.until <= now) expiredActive++;
        else expiredIdleActive++;
      }

      let droppedIdle = 0;
      const isIdle = (userId: string) => {
        const e = users.get(userId);
        return !e || e.seen + l.idleTtlMs <= now;
      };
      const dropIdle = (seq: number, userId: string) => {
        leaveLine(seq);
        users.delete(userId);
        droppedIdle++;
      };
      let checked = 0;
      let seq = Math.max(sweepCursor, head);
      for (; seq < nextSeq && checked < l.sweepBatch; seq++) {
        const userId = line.get(seq);
        if (userId === undefined) continue;
        checked++;
        if (isIdle(userId)) dropIdle(seq, userId);
      }
      sweepCursor = seq >= nextSeq ? head : seq;

      let admitted = 0;
      const room = l.maxActive - active.size;
      if (room > 0) {
        const T = 1000 / l.admitPerSecond;
        tat = Math.max(tat, now);
        let n = Math.min(room, Math.floor((now + l.burst * T - tat) / T));
        while (n > 0 && head < nextSeq) {
          const userId = line.get(head);
          if (userId !== undefined) {
            if (isIdle(userId)) dropIdle(head, userId);
            else {
              leaveLine(head);
              const e = users.get(userId)!;
              e.seen = 0;
              // Admission is the first use: the idle clock starts now.
              e.slot = { until: now + l.activeTtlMs, usedUntil: now + l.activeIdleTtlMs };
              active.set(userId, e.slot);
              admitted++;
              n--;
            }
          }
          head++;
        }
        if (admitted > 0) tat = Math.ceil(tat + admitted * T);
      }
      while (head < nextSeq && !line.has(head)) head++;

      admittedTotal += admitted;
      let nextSlotFreeAt: number | undefined;
      for (const slot of active.values()) nextSlotFreeAt = Math.min(nextSlotFreeAt ?? Infinity, slot.until, slot.usedUntil);

      if (admitted + droppedIdle + expiredActive + expiredIdleActive > 0) version++;
      return {
        admitted,
        expiredActive,
        expiredIdleActive,
        droppedIdle,
        waiting: line.size,
        active: active.size,
        admittedTotal,
        nextSlotFreeAt,
        version,
        generation: generation!,
      };
    },

    async expire(ref) {
      const e = users.get(ref.userId);
      if (!e || e.seq !== ref.seq) return false;
      drop(ref.userId);
      return true;
    },

    async syncTokenSecrets(candidate, known) {
      signing ??= candidate;
      const current = signing;
      for (const k of [current, ...known]) if (!secrets.some((s) => s.equals(k))) secrets.push(k);
      return { signing: current, all: [current, ...secrets.filter((s) => !s.equals(current))] };
    },

    async tokenSecret() {
      return (await this.syncTokenSecrets(randomBytes(32), [])).signing;
    },
  };
}
