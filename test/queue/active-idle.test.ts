/**
 * An ACTIVE user who stops making gated calls gives the slot back after
 * QUEUE_ACTIVE_IDLE_TTL; the gate records each use in the one store call it
 * already makes. Through the Queue, on both stores, with a manual clock.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { Queue } from "../../src/modules/queue/queue.service";
import { createQueueMetrics } from "../../src/modules/queue/queue.metrics";
import { ManualClock } from "../../src/platform/clock";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { memoryFactory, redisFactory, type StoreFactory } from "./store-factories";
import { queueSettings, recordingStore, T0 } from "./support";

const ACTIVE_IDLE = 60_000;

describe.each([memoryFactory(), redisFactory()])("ACTIVE idle TTL: $name store", (factory: StoreFactory) => {
  afterAll(() => factory.close());

  async function setUp() {
    const clock = new ManualClock(T0);
    const { store, calls } = recordingStore((await factory.create())[0]);
    const registry = new Registry();
    const queue: Queue = new Queue(
      store,
      clock,
      queueSettings({ maxActive: 1, activeIdleTtlMs: ACTIVE_IDLE }),
      createLogger("silent"),
      createQueueMetrics(registry, () => queue.openStreams),
    );
    const idleExpiries = async () =>
      (await registry.getSingleMetric("queue_expiries_total")!.get()).values.find((v) => v.labels.reason === "active_idle")?.value ?? 0;
    return { clock, calls, queue, idleExpiries };
  }

  test("a gated call keeps the slot, in the gate's one store call; polling does not; idle, the slot goes to the next in line", async () => {
    const { clock, calls, queue, idleExpiries } = await setUp();
    const a = await queue.issueToken("a");
    await queue.tick();
    const b = await queue.issueToken("b");

    clock.advance(50_000);
    calls.length = 0;
    expect(await queue.admitCaller(a.token)).toMatchObject({ state: "ACTIVE", userId: "a" });
    expect(calls).toEqual([`status:${JSON.stringify({ activeIdleTtlMs: ACTIVE_IDLE })}`]);

    // 100 s after admission, 50 s after the last gated call: still held, whatever polls.
    clock.advance(50_000);
    expect((await queue.getStatus(a.token)).state).toBe("ACTIVE");
    expect(await queue.tick()).toMatchObject({ expiredIdleActive: 0, admitted: 0, active: 1 });

    // 60 s after the gated call, polled or not.
    clock.advance(10_000);
    expect(await queue.tick()).toMatchObject({ expiredIdleActive: 1, expiredActive: 0, admitted: 1, active: 1 });
    expect(await idleExpiries()).toBe(1);
    const refused = await queue.admitCaller(a.token).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(refused?.code).toBe(Code.FailedPrecondition);
    expect(errorReason(refused)).toBe("QUEUE_TOKEN_EXPIRED");

    // b's idle clock started when it was admitted.
    expect((await queue.admitCaller(b.token)).state).toBe("ACTIVE");
    clock.advance(ACTIVE_IDLE - 1);
    expect(await queue.tick()).toMatchObject({ expiredIdleActive: 0, active: 1 });
    clock.advance(1);
    expect(await queue.tick()).toMatchObject({ expiredIdleActive: 1, active: 0 });
    expect(await idleExpiries()).toBe(2);
  });

  test("the absolute ACTIVE TTL still ends a slot in use", async () => {
    const { clock, queue } = await setUp();
    const a = await queue.issueToken("a");
    await queue.tick();
    // A gated call every 50 s, the last at 550 s: never idle for 60 s.
    for (let i = 0; i < 11; i++) {
      clock.advance(50_000);
      expect((await queue.admitCaller(a.token)).state).toBe("ACTIVE");
      expect(await queue.tick()).toMatchObject({ active: 1 });
    }
    clock.advance(50_000);
    expect(await queue.tick()).toMatchObject({ expiredActive: 1, expiredIdleActive: 0, active: 0 });
  });
});
