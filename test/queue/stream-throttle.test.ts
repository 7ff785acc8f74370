/** WatchQueueStatus fan-out: positions at most once per interval, admission at once. */
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import { Queue, type Ticket } from "../../src/modules/queue/queue.service";
import { ManualClock } from "../../src/platform/clock";
import { createLogger } from "../../src/platform/logger";

test("position-only updates wait for the interval; activation goes out in the same round", async () => {
  const clock = new ManualClock();
  const queue = new Queue(
    createMemoryQueueStore(),
    clock,
    {
      maxActive: 100,
      admitPerSecond: 1,
      activeTtlMs: 600_000,
      activeIdleTtlMs: 600_000,
      idleTtlMs: 600_000,
      tickMs: 1000,
      streamPositionIntervalMs: 5000,
      maxStreamsPerToken: 4,
    },
    createLogger("silent"),
  );
  const ahead = [];
  for (let i = 0; i < 3; i++) ahead.push(await queue.issueToken(`ahead-${i}`));
  const me = await queue.issueToken("me");
  const ac = new AbortController();
  const stream = queue.watch(me.token, ac.signal);
  // One outstanding read at a time: a read that timed out still gets the next message.
  let pending: Promise<IteratorResult<Ticket>> | undefined;
  const next = async () => {
    pending ??= stream.next();
    const r = await Promise.race([pending, new Promise<"none">((res) => setTimeout(() => res("none"), 200))]);
    if (r !== "none") pending = undefined;
    return r;
  };
  expect(((await next()) as IteratorResult<Ticket>).value).toMatchObject({ state: "WAITING", position: 3 });
  // Start reading at once, as the RPC handler does: that is when the stream subscribes.
  pending = stream.next();

  // One admitted per second: positions move every round, but this stream hears of it at most every 5 s.
  clock.advance(1000);
  await queue.tick(); // ahead-0 admitted (burst 1)
  expect(await next()).toBe("none");
  clock.advance(1000);
  await queue.tick(); // ahead-1
  expect(await next()).toBe("none");
  clock.advance(3000);
  await queue.tick(); // ahead-2; 5 s since the last message: the position goes out
  expect(((await next()) as IteratorResult<Ticket>).value).toMatchObject({ state: "WAITING", position: 0 });

  // Admission is not held back by the interval.
  clock.advance(1000);
  await queue.tick();
  expect(((await next()) as IteratorResult<Ticket>).value).toMatchObject({ state: "ACTIVE" });
  ac.abort();
  await stream.return(undefined);
});
