/**
 * One contract, two stores: the Redis store and the single-process store of
 * the embedded default must behave the same.
 */
import { randomBytes } from "node:crypto";
import type { AdmissionLimits, QueueStore } from "../../src/modules/queue/queue-store";
import { memoryFactory, redisFactory, type StoreFactory } from "./store-factories";

const IDLE = 120_000;
const ACTIVE_IDLE = 300_000;
const T0 = Date.parse("2026-12-01T10:00:00Z");
const limits = (over: Partial<AdmissionLimits> = {}): AdmissionLimits => ({
  maxActive: 10,
  admitPerSecond: 1000,
  burst: 1000,
  activeTtlMs: 600_000,
  activeIdleTtlMs: ACTIVE_IDLE,
  idleTtlMs: IDLE,
  sweepBatch: 2000,
  ...over,
});
const users = (n: number, tag = "u") => Array.from({ length: n }, (_, i) => `${tag}${i}`);

describe.each([memoryFactory(), redisFactory()])("queue store contract: $name", (factory: StoreFactory) => {
  let store: QueueStore;
  beforeEach(async () => {
    [store] = await factory.create();
  });
  afterAll(() => factory.close());

  test("concurrent IssueToken for one user yields one ticket", async () => {
    const tickets = await Promise.all(Array.from({ length: 50 }, () => store.issue("alice", T0, IDLE)));
    expect(new Set(tickets.map((t) => t.seq)).size).toBe(1);
    expect(tickets.every((t) => t.state === "WAITING" && t.position === 0)).toBe(true);
  });

  test("1,000 concurrent users get distinct tickets whose positions are 0..999 in arrival order", async () => {
    const tickets = await Promise.all(users(1000).map((u) => store.issue(u, T0, IDLE)));
    expect(new Set(tickets.map((t) => t.seq)).size).toBe(1000);
    const byArrival = [...tickets].sort((a, b) => a.seq - b.seq);
    expect(byArrival.map((t) => t.position)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const again = await store.status(byArrival, T0 + 1, IDLE, false);
    expect(again.map((t) => t.position)).toEqual(byArrival.map((t) => t.position));
  });

  test("asking again never moves a live ticket backwards", async () => {
    await store.issue("a", T0, IDLE);
    const b1 = await store.issue("b", T0, IDLE);
    await store.issue("c", T0, IDLE);
    const b2 = await store.issue("b", T0 + 1000, IDLE);
    expect(b2.seq).toBe(b1.seq);
    expect(b2.position).toBe(1);
  });

  test("positions fall as users are admitted, and admission goes strictly by arrival", async () => {
    const tickets = await Promise.all(users(30).map((u) => store.issue(u, T0, IDLE)));
    const ordered = [...tickets].sort((a, b) => a.seq - b.seq);
    const round = await store.admit(T0 + 10, limits({ maxActive: 10 }));
    expect(round.admitted).toBe(10);
    const after = await store.status(ordered, T0 + 20, IDLE, false);
    expect(after.slice(0, 10).every((t) => t.state === "ACTIVE")).toBe(true);
    expect(after.slice(10).map((t) => t.position)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(round.waiting).toBe(20);
    expect(round.active).toBe(10);
  });

  test("an admitted user asking again gets the same ACTIVE ticket", async () => {
    const t = await store.issue("alice", T0, IDLE);
    await store.admit(T0, limits());
    const again = await store.issue("alice", T0 + 5, IDLE);
    expect(again).toMatchObject({ seq: t.seq, state: "ACTIVE", expiresAt: T0 + 600_000 });
  });

  test("capacity bounds admission; expired actives free their slot", async () => {
    await Promise.all(users(5).map((u) => store.issue(u, T0, IDLE)));
    const first = await store.admit(T0, limits({ maxActive: 2, activeTtlMs: 1000 }));
    expect(first).toMatchObject({ admitted: 2, active: 2, waiting: 3 });
    // Keep the rest in line while the actives run out.
    const waiting = (await Promise.all(["u2", "u3", "u4"].map((u) => store.issue(u, T0 + 900, IDLE)))).length;
    expect(waiting).toBe(3);
    const stillFull = await store.admit(T0 + 999, limits({ maxActive: 2, activeTtlMs: 1000 }));
    expect(stillFull.admitted).toBe(0);
    const freed = await store.admit(T0 + 1000, limits({ maxActive: 2, activeTtlMs: 1000 }));
    expect(freed).toMatchObject({ expiredActive: 2, admitted: 2, active: 2, waiting: 1 });
  });

  test("the rate bounds admission: burst at once, then one per interval", async () => {
    await Promise.all(users(200).map((u) => store.issue(u, T0, IDLE)));
    const l = limits({ maxActive: 1000, admitPerSecond: 10, burst: 3 });
    expect((await store.admit(T0, l)).admitted).toBe(3);
    expect((await store.admit(T0 + 50, l)).admitted).toBe(0);
    expect((await store.admit(T0 + 100, l)).admitted).toBe(1);
    // Polled every 50 ms for 10 more seconds: exactly 10 a second, the burst already spent.
    let total = 0;
    for (let t = T0 + 150; t <= T0 + 10_100; t += 50) total += (await store.admit(t, l)).admitted;
    expect(total).toBe(100);
  });

  test("waiting tickets not seen for the idle TTL leave; polling keeps them", async () => {
    const idle = await store.issue("idle", T0, IDLE);
    const polled = await store.issue("polled", T0, IDLE);
    await store.status([polled], T0 + IDLE / 2, IDLE, true);
    const round = await store.admit(T0 + IDLE, limits({ maxActive: 1, admitPerSecond: 1, burst: 1 }));
    // The idle one is dropped (not admitted), the polled one takes the slot.
    expect(round.droppedIdle).toBe(1);
    expect(round.admitted).toBe(1);
    const [i, p] = await store.status([idle, polled], T0 + IDLE, IDLE, false);
    expect(i.state).toBe("EXPIRED");
    expect(p.state).toBe("ACTIVE");
    const back = await store.issue("idle", T0 + IDLE + 1, IDLE);
    expect(back.seq).toBeGreaterThan(polled.seq);
  });

  test("the idle sweep removes idle users from the middle, so positions behind them fall", async () => {
    const a = await store.issue("a", T0, IDLE);
    const b = await store.issue("b", T0, IDLE);
    const c = await store.issue("c", T0, IDLE);
    await store.status([a, c], T0 + IDLE - 1, IDLE, true);
    const round = await store.admit(T0 + IDLE, limits({ maxActive: 0 + 1, admitPerSecond: 1, burst: 1, activeTtlMs: 1 }));
    expect(round.droppedIdle).toBe(1);
    const [, sb, sc] = await store.status([a, b, c], T0 + IDLE + 1, IDLE, false);
    expect(sb.state).toBe("EXPIRED");
    expect(sc).toMatchObject({ state: "WAITING", position: 0 });
  });

  test("expire() ends a live ticket; a stale reference reads EXPIRED and leaves the new ticket alone", async () => {
    const old = await store.issue("alice", T0, IDLE);
    await store.admit(T0, limits());
    expect(await store.expire(old)).toBe(true);
    expect((await store.status([old], T0 + 1, IDLE, false))[0].state).toBe("EXPIRED");
    const fresh = await store.issue("alice", T0 + 2, IDLE);
    expect(fresh.seq).not.toBe(old.seq);
    expect(await store.expire(old)).toBe(false);
    expect((await store.status([old, fresh], T0 + 3, IDLE, false)).map((t) => t.state)).toEqual(["EXPIRED", "WAITING"]);
  });

  test("every round reports the admissions so far, its own and earlier rounds' together", async () => {
    await Promise.all(users(20).map((u) => store.issue(u, T0, IDLE)));
    const r0 = await store.admit(T0, limits({ maxActive: 100, burst: 5, admitPerSecond: 5 }));
    expect(r0.admitted).toBe(5);
    const r1 = await store.admit(T0 + 1000, limits({ maxActive: 100, burst: 5, admitPerSecond: 5 }));
    expect(r1.admitted).toBe(5);
    expect(r1.admittedTotal - r0.admittedTotal).toBe(5);
    const idle = await store.admit(T0 + 1001, limits({ maxActive: 100, burst: 5, admitPerSecond: 5 }));
    expect(idle.admitted).toBe(0);
    expect(idle.admittedTotal).toBe(r1.admittedTotal);
  });

  describe("ACTIVE idleness", () => {
    const USE = { activeIdleTtlMs: 10_000 };
    const l = (over: Partial<AdmissionLimits> = {}) => limits({ maxActive: 2, activeIdleTtlMs: USE.activeIdleTtlMs, ...over });

    test("an ACTIVE ticket with no gated call for the idle TTL gives its slot back; admission starts the clock", async () => {
      const [a, b, c] = await Promise.all(["a", "b", "c"].map((u, i) => store.issue(u, T0 + i, IDLE)));
      expect(await store.admit(T0 + 10, l())).toMatchObject({ admitted: 2, active: 2, waiting: 1 });

      // a makes a gated call; b only polls and streams, which is not using the slot.
      expect((await store.status([a], T0 + 6000, IDLE, USE))[0]).toMatchObject({ state: "ACTIVE", expiresAt: T0 + 10 + 600_000 });
      await store.status([b, c], T0 + 6000, IDLE, true);

      expect(await store.admit(T0 + 10_009, l())).toMatchObject({ admitted: 0, expiredIdleActive: 0, active: 2 });
      const freed = await store.admit(T0 + 10_010, l());
      expect(freed).toMatchObject({ expiredIdleActive: 1, expiredActive: 0, admitted: 1, active: 2, waiting: 0 });
      const [sa, sb, sc] = await store.status([a, b, c], T0 + 10_011, IDLE, false);
      expect(sa).toMatchObject({ state: "ACTIVE", expiresAt: T0 + 10 + 600_000 }); // the window itself does not move
      expect(sb.state).toBe("EXPIRED");
      expect(sc.state).toBe("ACTIVE");

      // a's last use was at +6 s; c was admitted at +10.01 s.
      expect(await store.admit(T0 + 16_000, l())).toMatchObject({ expiredIdleActive: 1, active: 1 });
      expect((await store.status([a, c], T0 + 16_001, IDLE, false)).map((t) => t.state)).toEqual(["EXPIRED", "ACTIVE"]);
    });

    test("an idle ACTIVE ticket reads EXPIRED before any round, and a late gated call does not revive it", async () => {
      const a = await store.issue("a", T0, IDLE);
      await store.admit(T0, l());
      expect((await store.status([a], T0 + 9_999, IDLE, false))[0].state).toBe("ACTIVE");
      expect((await store.status([a], T0 + 10_000, IDLE, USE))[0].state).toBe("EXPIRED");
      expect(await store.admit(T0 + 10_001, l())).toMatchObject({ active: 0, expiredIdleActive: 0 });
      const again = await store.issue("a", T0 + 10_002, IDLE);
      expect(again).toMatchObject({ state: "WAITING" });
      expect(again.seq).toBeGreaterThan(a.seq);
    });

    test("a gated call does not keep a WAITING ticket in line", async () => {
      await store.issue("holder", T0, IDLE);
      await store.admit(T0, l({ maxActive: 1 }));
      const w = await store.issue("w", T0, IDLE);
      const [seen] = await store.status([w], T0 + 5000, IDLE, USE);
      expect(seen).toMatchObject({ state: "WAITING", expiresAt: T0 + IDLE });
    });

    test("the round reports when the next slot frees: the earliest window end or idle deadline", async () => {
      const none = await store.admit(T0, l({ activeTtlMs: 60_000, activeIdleTtlMs: 30_000 }));
      expect(none.nextSlotFreeAt).toBeUndefined();
      const [a, b] = await Promise.all(["a", "b"].map((u) => store.issue(u, T0, IDLE)));
      const use = { activeIdleTtlMs: 30_000 };
      const lim = l({ activeTtlMs: 60_000, activeIdleTtlMs: 30_000 });
      expect(await store.admit(T0 + 1, lim)).toMatchObject({ admitted: 2, nextSlotFreeAt: T0 + 1 + 30_000 });

      await store.status([a], T0 + 20_000, IDLE, use);
      await store.status([b], T0 + 25_000, IDLE, use);
      // An instance whose clock lags 1 s never moves a deadline back.
      await store.status([a], T0 + 19_000, IDLE, use);
      expect((await store.admit(T0 + 26_000, lim)).nextSlotFreeAt).toBe(T0 + 50_000);

      // Both keep using their slots: now the windows end first.
      await store.status([a, b], T0 + 45_000, IDLE, use);
      expect((await store.admit(T0 + 46_000, lim)).nextSlotFreeAt).toBe(T0 + 1 + 60_000);

      // Gone after payment: no idle deadline is left behind.
      await store.expire(a);
      await store.expire(b);
      const empty = await store.admit(T0 + 47_000, lim);
      expect(empty).toMatchObject({ active: 0, expiredIdleActive: 0 });
      expect(empty.nextSlotFreeAt).toBeUndefined();
      expect(await store.admit(T0 + 200_000, lim)).toMatchObject({ expiredIdleActive: 0, expiredActive: 0 });
    });
  });

  test("the token secret: the first candidate becomes it and stays; known secrets join the verify set", async () => {
    const [first, second, older] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const a = await store.syncTokenSecrets(first, []);
    expect(a.signing.equals(first)).toBe(true);
    expect(a.all).toEqual([first]);
    const b = await store.syncTokenSecrets(second, [older]);
    expect(b.signing.equals(first)).toBe(true);
    expect(b.all.map((k) => k.toString("hex")).sort()).toEqual([first, older].map((k) => k.toString("hex")).sort());
    expect(b.all[0].equals(first)).toBe(true);
    expect((await store.tokenSecret()).equals(first)).toBe(true);
  });
});
