/**
 * Several instances admit from one Redis at once: together they must never
 * exceed the capacity or the rate, and never admit anyone twice.
 */
import type { AdmissionLimits } from "../../src/modules/queue/queue-store";
import { redisFactory } from "./store-factories";

const factory = redisFactory();
afterAll(() => factory.close());

const T0 = Date.parse("2026-12-01T10:00:00Z");
const IDLE = 3_600_000;

test("3 concurrent admitters on one Redis stay within capacity and rate, and admit nobody twice", async () => {
  const stores = await factory.create(3);
  const users = Array.from({ length: 1000 }, (_, i) => `user${i}`);
  const tickets = await Promise.all(users.map((u, i) => stores[i % 3].issue(u, T0, IDLE)));
  const limits: AdmissionLimits = {
    maxActive: 150,
    admitPerSecond: 100,
    burst: 10,
    activeTtlMs: 700,
    activeIdleTtlMs: IDLE,
    idleTtlMs: IDLE,
    sweepBatch: 500,
  };

  const rounds: { at: number; admitted: number; active: number }[] = [];
  // 4 simulated seconds, a round every 20 ms on each instance, clocks up to 7 ms apart.
  for (let step = 0; step <= 200; step++) {
    const at = T0 + step * 20;
    const results = await Promise.all(stores.map((s, i) => s.admit(at + i * 3, limits)));
    for (const [i, r] of results.entries()) rounds.push({ at: at + i * 3, admitted: r.admitted, active: r.active });
  }

  const admitted = rounds.reduce((n, r) => n + r.admitted, 0);
  // Capacity: never more than maxActive active after any round.
  expect(Math.max(...rounds.map((r) => r.active))).toBeLessThanOrEqual(limits.maxActive);
  // Rate: over every window, at most rate x window + burst.
  const span = (rounds[rounds.length - 1].at - T0) / 1000;
  expect(admitted).toBeLessThanOrEqual(Math.floor(limits.admitPerSecond * span) + limits.burst);
  for (let w = 0; w < rounds.length; w++) {
    const start = rounds[w].at;
    const inSecond = rounds.filter((r) => r.at >= start && r.at < start + 1000).reduce((n, r) => n + r.admitted, 0);
    expect(inSecond).toBeLessThanOrEqual(limits.admitPerSecond + limits.burst);
  }
  // The actives expire after 700 ms, so capacity is not what limits here: the rate is, and it is used.
  expect(admitted).toBeGreaterThanOrEqual(Math.floor(limits.admitPerSecond * span) - limits.burst);

  // Nobody twice: admissions went strictly from the head, so exactly the first `admitted` users
  // (by ticket number) were ever admitted, and everyone behind them still waits in order.
  const byArrival = [...tickets].sort((a, b) => a.seq - b.seq);
  const now = rounds[rounds.length - 1].at;
  const states = await stores[0].status(byArrival, now, IDLE, false);
  const stillWaiting = states.filter((s) => s.state === "WAITING");
  expect(stillWaiting.length).toBe(1000 - admitted);
  expect(stillWaiting.map((s) => s.position)).toEqual(Array.from({ length: 1000 - admitted }, (_, i) => i));
  expect(states.slice(0, admitted).every((s) => s.state !== "WAITING")).toBe(true);
});
