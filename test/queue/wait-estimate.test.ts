/**
 * The estimate a waiting buyer sees. After a burst fills the room, the rate
 * observed over the last minute is high, but nobody goes in before a slot
 * frees: the estimate must say so instead of "a second or so".
 */
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import { Queue } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { createLogger } from "../../src/platform/logger";
import { queueSettings, T0 } from "./support";

const MAX_ACTIVE = 50;
const ACTIVE_IDLE = 120_000;
const ACTIVE_TTL = 600_000;

async function setUp() {
  const clock = new ManualClock(T0);
  const queue = new Queue(
    createMemoryQueueStore(),
    clock,
    queueSettings({ maxActive: MAX_ACTIVE, admitPerSecond: 1000, activeTtlMs: ACTIVE_TTL, activeIdleTtlMs: ACTIVE_IDLE }),
    createLogger("silent"),
  );
  const admitted = [];
  for (let i = 0; i < MAX_ACTIVE; i++) admitted.push(await queue.issueToken(`early-${i}`));
  return { clock, queue, admitted };
}

/** 50 admissions in the last minute: the observed rate gives 1.2 s a place. */
const PER_PLACE_MS = 60_000 / MAX_ACTIVE;

test("with room left the estimate is the people ahead at the observed rate", async () => {
  const queue = new Queue(createMemoryQueueStore(), new ManualClock(T0), queueSettings({ maxActive: 100, admitPerSecond: 1, tickMs: 1000 }), createLogger("silent"));
  await queue.issueToken("x");
  expect(await queue.tick()).toMatchObject({ admitted: 1, active: 1 }); // 1 in the last minute, room for 99 more
  expect((await queue.issueToken("y")).estimatedWaitMs).toBe(60_000);
  expect((await queue.issueToken("z")).estimatedWaitMs).toBe(120_000);
});

test("with the room full the estimate is at least until the first slot frees, plus the people ahead at the rate", async () => {
  const { clock, queue, admitted } = await setUp();
  expect(await queue.tick()).toMatchObject({ admitted: MAX_ACTIVE, active: MAX_ACTIVE, nextSlotFreeAt: T0 + ACTIVE_IDLE });
  const first = await queue.issueToken("late-0");
  const second = await queue.issueToken("late-1");
  // Not 1.2 s: the first slot frees when an idle deadline passes, 2 minutes from now.
  expect(first).toMatchObject({ position: 0, estimatedWaitMs: ACTIVE_IDLE });
  expect(second).toMatchObject({ position: 1, estimatedWaitMs: ACTIVE_IDLE + PER_PLACE_MS });

  // Time passes without a round: the estimate counts down with the clock.
  clock.advance(30_000);
  expect((await queue.getStatus(first.token)).estimatedWaitMs).toBe(ACTIVE_IDLE - 30_000);

  // Everyone in the room books on: the idle deadlines move, and so does the estimate.
  for (const t of admitted) await queue.admitCaller(t.token);
  await queue.tick();
  expect((await queue.getStatus(first.token)).estimatedWaitMs).toBe(ACTIVE_IDLE);
  expect((await queue.getStatus(second.token)).estimatedWaitMs).toBe(ACTIVE_IDLE + PER_PLACE_MS);

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

  // One pays and leaves; late-0 takes the slot and the room is full again. late-1 is
  // now first: 30 s to the first window end, but with one admission in the last
  // minute the rate says a minute, and the estimate is never below the rate's.
  expect(T0 + ACTIVE_TTL - now).toBe(30_000);
  await queue.expireAfterPayment(admitted[0].token);
  expect(await queue.tick()).toMatchObject({ admitted: 1, active: MAX_ACTIVE });
  expect((await queue.getStatus(second.token)).estimatedWaitMs).toBe(60_000);
});
