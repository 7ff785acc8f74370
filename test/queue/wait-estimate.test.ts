/**
 * The estimate a waiting buyer sees: the people ahead at the rate the line
 * moves now. Early in an on-sale that rate is known after one round (not
 * averaged with the quiet minute before), it follows a change within a few
 * rounds, and with the room full nobody goes in before a slot frees.
 */
import { createAdmissionRate, RATE_HALF_LIFE_ROUNDS } from "../../src/modules/queue/admission-rate";
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import type { AdmissionRound, QueueStore } from "../../src/modules/queue/queue-store";
import { Queue, type QueueSettings } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { createLogger } from "../../src/platform/logger";
import { queueSettings, T0 } from "./support";

const TICK = 250;

function queueOn(clock: ManualClock, over: Partial<QueueSettings>, store: QueueStore = createMemoryQueueStore()): Queue {
  return new Queue(store, clock, queueSettings({ tickMs: TICK, ...over }), createLogger("silent"));
}

/** One admission round a tick after the last, as the loop runs them. */
async function round(clock: ManualClock, queue: Queue) {
  clock.advance(TICK);
  return (await queue.tick())!;
}

async function join(queue: Queue, n: number, prefix = "buyer") {
  const tickets = [];
  for (let i = 0; i < n; i++) tickets.push(await queue.issueToken(`${prefix}-${i}`));
  return tickets;
}

/** Within 5% of `ms`. */
const about = (ms: number) => expect.toBeWithin(ms * 0.95, ms * 1.05 + 1);

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    interface Expect {
      toBeWithin(low: number, high: number): unknown;
    }
    interface Matchers<R> {
      toBeWithin(low: number, high: number): R;
    }
  }
}
expect.extend({
  toBeWithin(received: number, low: number, high: number) {
    const pass = received >= low && received <= high;
    return { pass, message: () => `expected ${received} ${pass ? "not " : ""}to be within [${low}, ${high}]` };
  },
});

describe("early in an on-sale", () => {
  test("the first round that admits gives the rate: 122 people ahead at 200 a second wait about 0.6 s, not half a minute", async () => {
    const clock = new ManualClock(T0);
    const queue = queueOn(clock, { maxActive: 10_000, admitPerSecond: 200 });
    // The loop has been running with nobody in line.
    for (let i = 0; i < 8; i++) expect(await round(clock, queue)).toMatchObject({ admitted: 0, waiting: 0 });

    const tickets = await join(queue, 500);
    // Before any round: the configured rate.
    expect(tickets[122].estimatedWaitMs).toEqual(about((123 / 200) * 1000));

    expect(await round(clock, queue)).toMatchObject({ admitted: 50, waiting: 450 });
    const status = await queue.getStatus(tickets[172].token);
    expect(status.position).toBe(122);
    expect(status.estimatedWaitMs).toEqual(about((123 / 200) * 1000));
    // What the fixed one-minute window said: 50 admissions a minute.
    expect(status.estimatedWaitMs).toBeLessThan(((123 / 50) * 60_000) / 40);
  });

  test("a queue whose very first round is the on-sale's gets the rate from its second round", async () => {
    const clock = new ManualClock(T0);
    const queue = queueOn(clock, { maxActive: 10_000, admitPerSecond: 40 });
    const tickets = await join(queue, 300);
    await round(clock, queue);
    await round(clock, queue);
    const status = await queue.getStatus(tickets[299].token);
    expect(status.position).toBe(299 - 20);
    expect(status.estimatedWaitMs).toEqual(about((280 / 40) * 1000));
  });
});

describe.each([4, 40, 400])("after N rounds at %d admissions a second", (perSecond) => {
  test.each([1, 3, 10])("the estimate for P people ahead is P / rate after %d rounds", async (rounds) => {
    const clock = new ManualClock(T0);
    const queue = queueOn(clock, { maxActive: 100_000, admitPerSecond: perSecond });
    await round(clock, queue); // the loop was running before anyone came
    const tickets = await join(queue, perSecond * 10);
    for (let i = 0; i < rounds; i++) await round(clock, queue);
    for (const t of [tickets[tickets.length - 1], tickets[Math.floor(tickets.length / 2)]]) {
      const status = await queue.getStatus(t.token);
      expect(status.state).toBe("WAITING");
      expect(status.estimatedWaitMs).toEqual(about(((status.position + 1) / perSecond) * 1000));
    }
  });
});

test("a line held back by the room, not the configured rate, is estimated at the rate it moves", async () => {
  // 20 slots, each given back 500 ms after admission (nobody books on): 40 a second get in, whatever
  // the configured 1000 a second would allow.
  const clock = new ManualClock(T0);
  const queue = queueOn(clock, { maxActive: 20, admitPerSecond: 1000, activeIdleTtlMs: 500 });
  const tickets = await join(queue, 2000);
  let total = 0;
  const last = 16;
  for (let i = 0; i < 40; i++) {
    const r = await round(clock, queue);
    if (i >= 40 - last) total += r.admitted;
  }
  const actualPerMs = total / (last * TICK);
  expect(actualPerMs * 1000).toBeWithin(30, 50);
  const status = await queue.getStatus(tickets[1999].token);
  expect(status.state).toBe("WAITING");
  const expected = (status.position + 1) / actualPerMs;
  expect(status.estimatedWaitMs).toBeWithin(expected * 0.8, expected * 1.2);
  // The configured rate would have said under two seconds.
  expect((status.position + 1) / 1).toBeLessThan(2000);
});

test("admissions by other instances count: two instances on one store, each sees the line's whole rate", async () => {
  const clock = new ManualClock(T0);
  const store = createMemoryQueueStore();
  const [a, b] = [queueOn(clock, { maxActive: 100_000, admitPerSecond: 40 }, store), queueOn(clock, { maxActive: 100_000, admitPerSecond: 40 }, store)];
  const tickets = await join(a, 400);
  for (let i = 0; i < 8; i++) {
    clock.advance(TICK / 2);
    await (i % 2 ? b : a).tick();
  }
  const status = await a.getStatus(tickets[399].token);
  // Each instance admitted half; the shared total says 40 a second.
  expect(status.estimatedWaitMs).toEqual(about(((status.position + 1) / 40) * 1000));
});

describe("the rate as an exponentially weighted average of rounds", () => {
  const HALF_LIFE = RATE_HALF_LIFE_ROUNDS * TICK;
  const rounds = () => {
    let total = 0;
    let at = T0;
    return (admitted: number, over: Partial<AdmissionRound> = {}): [AdmissionRound, number] => {
      total += admitted;
      at += TICK;
      const r: AdmissionRound = {
        admitted,
        expiredActive: 0,
        expiredIdleActive: 0,
        droppedIdle: 0,
        waiting: 100,
        active: 0,
        admittedTotal: total,
        version: 0,
        generation: 1,
        ...over,
      };
      return [r, at];
    };
  };

  test("a change in the rate is followed: half the gap closes every half-life", () => {
    const rate = createAdmissionRate(HALF_LIFE);
    const next = rounds();
    for (let i = 0; i < 20; i++) rate.observe(...next(10)); // 10 a round
    expect(rate.perMs).toBeCloseTo(10 / TICK, 10);
    for (let i = 0; i < RATE_HALF_LIFE_ROUNDS; i++) rate.observe(...next(2)); // then 2 a round
    expect(rate.perMs! * TICK).toBeCloseTo(2 + 8 / 2, 6);
    for (let i = 0; i < 2 * RATE_HALF_LIFE_ROUNDS; i++) rate.observe(...next(2));
    expect(rate.perMs! * TICK).toBeCloseTo(2 + 8 / 8, 6);
  });

  test("rounds after which nobody waits are left out: a line that ran dry says nothing about its speed", () => {
    const rate = createAdmissionRate(HALF_LIFE);
    const next = rounds();
    rate.observe(...next(0));
    rate.observe(...next(10));
    rate.observe(...next(3, { waiting: 0 }));
    rate.observe(...next(0, { waiting: 0 }));
    expect(rate.perMs).toBeCloseTo(10 / TICK, 10);
  });

  test("after a quiet spell the first busy round replaces the old rate", () => {
    const rate = createAdmissionRate(HALF_LIFE);
    const next = rounds();
    rate.observe(...next(0));
    rate.observe(...next(2));
    for (let i = 0; i < 400; i++) rate.observe(...next(0, { waiting: 0 })); // 100 s with nobody in line
    rate.observe(...next(50));
    expect(rate.perMs! * TICK).toBeCloseTo(50, 3);
  });

  test("a store that started over (new generation, total back at zero) gives no sample for that round", () => {
    const rate = createAdmissionRate(HALF_LIFE);
    const next = rounds();
    rate.observe(...next(0));
    rate.observe(...next(10));
    const [lost, at] = next(1, { generation: 2 });
    rate.observe({ ...lost, admittedTotal: 1 }, at);
    expect(rate.perMs).toBeCloseTo(10 / TICK, 10);
  });

  test("nothing observed yet: undefined", () => {
    const rate = createAdmissionRate(HALF_LIFE);
    const next = rounds();
    rate.observe(...next(5));
    expect(rate.perMs).toBeUndefined();
  });
});

describe("with the room full", () => {
  const MAX_ACTIVE = 50;
  const ACTIVE_IDLE = 120_000;
  const ACTIVE_TTL = 600_000;
  /** Every slot frees within the active TTL: the slowest the line can move. */
  const SLOWEST_PER_PLACE_MS = ACTIVE_TTL / MAX_ACTIVE;

  test("the estimate is at least until the first slot frees, plus the people ahead at the rate", async () => {
    const clock = new ManualClock(T0);
    const queue = new Queue(
      createMemoryQueueStore(),
      clock,
      queueSettings({ maxActive: MAX_ACTIVE, admitPerSecond: 1000, activeTtlMs: ACTIVE_TTL, activeIdleTtlMs: ACTIVE_IDLE }),
      createLogger("silent"),
    );
    const admitted = await join(queue, MAX_ACTIVE, "early");
    expect(await queue.tick()).toMatchObject({ admitted: MAX_ACTIVE, active: MAX_ACTIVE, nextSlotFreeAt: T0 + ACTIVE_IDLE });
    const first = await queue.issueToken("late-0");
    const second = await queue.issueToken("late-1");
    // Not a millisecond (the configured 1000 a second): the first slot frees when an idle deadline passes, 2 minutes from now.
    expect(first).toMatchObject({ position: 0, estimatedWaitMs: ACTIVE_IDLE });
    expect(second).toMatchObject({ position: 1, estimatedWaitMs: ACTIVE_IDLE + 1 });

    // Time passes without a round: the estimate counts down with the clock.
    clock.advance(30_000);
    expect((await queue.getStatus(first.token)).estimatedWaitMs).toBe(ACTIVE_IDLE - 30_000);

    // Everyone in the room books on: the idle deadlines move, and so does the estimate.
    // The round sees people waiting and nobody let in: the line stands still, so the
    // rate is the slowest the room can turn over.
    for (const t of admitted) await queue.admitCaller(t.token);
    expect(await queue.tick()).toMatchObject({ admitted: 0, waiting: 2 });
    expect((await queue.getStatus(first.token)).estimatedWaitMs).toBe(ACTIVE_IDLE);
    expect((await queue.getStatus(second.token)).estimatedWaitMs).toBe(ACTIVE_IDLE + SLOWEST_PER_PLACE_MS);

    // Busy until their windows end: then the window is what the estimate waits for.
    for (let t = 30_000; t < ACTIVE_TTL - 60_000; t += 60_000) {
      clock.advance(60_000);
      for (const a of admitted) await queue.admitCaller(a.token);
      await queue.getStatus(first.token);
      await queue.getStatus(second.token);
    }
    await queue.tick();
    const now = clock.now().getTime();
    expect((await queue.getStatus(first.token)).estimatedWaitMs).toBe(T0 + ACTIVE_TTL - now);

    // One pays and leaves; late-0 takes the slot and the room is full again.
    // late-1 is now first: 30 s to the first window end.
    expect(T0 + ACTIVE_TTL - now).toBe(30_000);
    await queue.expireAfterPayment(admitted[0].token);
    expect(await queue.tick()).toMatchObject({ admitted: 1, active: MAX_ACTIVE });
    expect((await queue.getStatus(second.token)).estimatedWaitMs).toBe(30_000);
  });
});
