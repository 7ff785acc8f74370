/**
 * When the store loses its data (an empty restart), a token of the older
 * generation puts its ticket back: WAITING at its number, ACTIVE until its
 * window ends. One contract for both stores; what needs several instances on
 * one Redis (numbering resumes above what they saw, the shared secret) is in
 * test/faults/queue-redis-restart.test.ts.
 */
import type { AdmissionLimits, IssuedTicket, QueueStore, RestorePolicy, StoredTicket, TicketRef } from "../../src/modules/queue/queue-store";
import { memoryFactory, redisFactory, type StoreFactory } from "./store-factories";
import { T0 } from "./support";

const IDLE = 300_000;
const ACTIVE_TTL = 240_000;
const ACTIVE_IDLE = 300_000;
const policy: RestorePolicy = { maxActive: 2, activeIdleTtlMs: ACTIVE_IDLE, windowMs: ACTIVE_IDLE, maxAgeMs: 3_600_000 };
const limits: AdmissionLimits = {
  maxActive: 2,
  admitPerSecond: 1000,
  burst: 1000,
  activeTtlMs: ACTIVE_TTL,
  activeIdleTtlMs: ACTIVE_IDLE,
  idleTtlMs: IDLE,
  sweepBatch: 2000,
};

/** What a WAITING token of `t` says. */
const waitingRef = (t: IssuedTicket): TicketRef => ({
  userId: t.userId,
  seq: t.seq,
  origin: { generation: t.generation, state: "WAITING", issuedAt: t.issuedAt },
});
/** What the token signed again on admission says. */
const activeRef = (t: StoredTicket): TicketRef => ({
  userId: t.userId,
  seq: t.seq,
  origin: { generation: t.generation, state: "ACTIVE", activeUntil: t.expiresAt },
});

describe.each([memoryFactory(), redisFactory()])("restoring lost tickets: $name store", (factory: StoreFactory) => {
  afterAll(() => factory.close());

  /** a, b ACTIVE; c, d, e WAITING; then the data is lost. */
  async function lostLine() {
    const [before] = await factory.create();
    const issued: IssuedTicket[] = [];
    for (const u of ["a", "b", "c", "d", "e"]) issued.push(await before.issue(u, T0, IDLE));
    await before.admit(T0 + 10, limits);
    const [a, b] = await before.status(issued.slice(0, 2), T0 + 20, IDLE, false);
    expect([a.state, b.state]).toEqual(["ACTIVE", "ACTIVE"]);
    const refs = { a: activeRef(a), b: activeRef(b), c: waitingRef(issued[2]), d: waitingRef(issued[3]), e: waitingRef(issued[4]) };
    const [store] = await factory.lose();
    return { store, refs, issued, activeUntil: a.expiresAt };
  }
  const one = async (store: QueueStore, ref: TicketRef, now: number, touch: boolean | { activeIdleTtlMs: number } = true) =>
    (await store.status([ref], now, IDLE, touch, policy))[0];

  test("WAITING tickets come back in their order, ACTIVE ones ACTIVE until their window ends, each once", async () => {
    const { store, refs, issued, activeUntil } = await lostLine();
    const T1 = T0 + 60_000;
    // They come back in any order; the line is ordered by their numbers.
    const e = await one(store, refs.e, T1);
    expect(e).toMatchObject({ state: "WAITING", position: 0, restored: true });
    expect(e.generation).not.toBe(issued[4].generation);
    expect(await one(store, refs.a, T1 + 1, { activeIdleTtlMs: ACTIVE_IDLE })).toMatchObject({ state: "ACTIVE", expiresAt: activeUntil, restored: true });
    expect(await one(store, refs.c, T1 + 2)).toMatchObject({ state: "WAITING", position: 0, restored: true });
    expect(await one(store, refs.d, T1 + 3)).toMatchObject({ state: "WAITING", position: 1, restored: true });
    expect(await one(store, refs.b, T1 + 4)).toMatchObject({ state: "ACTIVE", expiresAt: activeUntil, restored: true });
    const again = await store.status([refs.a, refs.b, refs.c, refs.d, refs.e], T1 + 5, IDLE, false, policy);
    expect(again.map((t) => [t.state, t.position, t.restored ?? false])).toEqual([
      ["ACTIVE", -1, false],
      ["ACTIVE", -1, false],
      ["WAITING", 0, false],
      ["WAITING", 1, false],
      ["WAITING", 2, false],
    ]);

    // Asking again gives the same ticket, and the same WAITING token (the minute it was issued).
    expect(await store.issue("d", T1 + 6, IDLE)).toMatchObject({ seq: issued[3].seq, state: "WAITING", position: 1, issuedAt: T0 });

    // The restored slots end with their original windows; then c and d go in, in order.
    const full = await store.admit(activeUntil - 1, limits);
    expect(full).toMatchObject({ admitted: 0, active: 2, waiting: 3 });
    await store.status([refs.c, refs.d, refs.e], activeUntil - 1, IDLE, true, policy);
    const freed = await store.admit(activeUntil, limits);
    expect(freed).toMatchObject({ expiredActive: 2, admitted: 2, active: 2, waiting: 1 });
    const after = await store.status([refs.a, refs.c, refs.d, refs.e], activeUntil + 1, IDLE, false, policy);
    expect(after.map((t) => t.state)).toEqual(["EXPIRED", "ACTIVE", "ACTIVE", "WAITING"]);
  });

  test("once back, a ticket that goes missing again has expired; in its own generation a missing ticket always has", async () => {
    const [store] = await factory.create();
    const t = await store.issue("payer", T0, IDLE);
    await store.admit(T0, limits);
    const [active] = await store.status([t], T0, IDLE, false);
    expect(await store.expire(t)).toBe(true); // paid
    expect(await one(store, activeRef(active), T0 + 1)).toMatchObject({ state: "EXPIRED" });
    expect(await one(store, waitingRef(t), T0 + 1)).toMatchObject({ state: "EXPIRED" });

    const other = await store.issue("other", T0 + 2, IDLE);
    const [lost] = await factory.lose();
    expect(await one(lost, waitingRef(other), T0 + 10_000)).toMatchObject({ state: "WAITING", restored: true });
    expect(await lost.expire(other)).toBe(true);
    expect(await one(lost, waitingRef(other), T0 + 10_001)).toMatchObject({ state: "EXPIRED" });
  });

  test("not put back: past the window, a WAITING token older than the limit, an ACTIVE one whose window ended, a q1 token, without a policy", async () => {
    const { store, refs } = await lostLine();
    const T1 = T0 + 60_000;
    // The first call starts the new generation; the window runs from there.
    expect((await one(store, { userId: "q1-user", seq: refs.c.seq }, T1)).state).toBe("EXPIRED"); // a q1 ref carries no origin
    expect((await store.status([refs.c], T1, IDLE, true))[0].state).toBe("EXPIRED"); // no policy: nothing is put back
    expect((await one(store, { ...refs.d, origin: { ...refs.d.origin!, state: "WAITING", issuedAt: T1 - policy.maxAgeMs } }, T1)).state).toBe("EXPIRED");
    expect((await one(store, { ...refs.e, origin: { ...refs.e.origin!, state: "WAITING", issuedAt: 0 } }, T1)).state).toBe("EXPIRED");
    expect((await one(store, { ...refs.a, origin: { ...refs.a.origin!, state: "ACTIVE", activeUntil: T1 } }, T1)).state).toBe("EXPIRED");
    expect((await one(store, refs.e, T1 + policy.windowMs)).state).toBe("EXPIRED");
    expect((await one(store, refs.c, T1 + policy.windowMs - 1)).state).toBe("WAITING");
  });

  test("an ACTIVE token that finds the room full goes back in line at its number, ahead of later tickets", async () => {
    const { store, refs } = await lostLine();
    const T1 = T0 + 60_000;
    const newcomers = [await store.issue("x", T1, IDLE), await store.issue("y", T1, IDLE)];
    // The round runs before a and b come back: x and y fill the room.
    expect(await store.admit(T1 + 1, limits)).toMatchObject({ admitted: 2, active: 2 });
    const late = await store.issue("z", T1 + 2, IDLE);
    const a = await one(store, refs.a, T1 + 3);
    expect(a).toMatchObject({ state: "WAITING", restored: true });
    expect(a.seq).toBeLessThan(late.seq);
    const [z] = await store.status([late], T1 + 4, IDLE, true);
    expect([a.position, z.position]).toEqual([0, 1]);
    expect(newcomers.every((n) => n.state === "WAITING")).toBe(true);
  });
});
