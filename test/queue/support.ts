/** Building blocks for tests of the Queue itself: settings, and a store that shows its calls. */
import type { QueueStore } from "../../src/modules/queue/queue-store";
import type { QueueSettings } from "../../src/modules/queue/queue.service";

export const T0 = Date.parse("2026-12-01T10:00:00Z");

/** Generous defaults: nothing expires or is held back unless a test says so. */
export const queueSettings = (over: Partial<QueueSettings> = {}): QueueSettings => ({
  maxActive: 10,
  admitPerSecond: 1000,
  activeTtlMs: 600_000,
  activeIdleTtlMs: 600_000,
  idleTtlMs: 600_000,
  tickMs: 250,
  streamPositionIntervalMs: 0,
  maxStreamsPerToken: 4,
  ...over,
});

/**
 * Passes every call on to `inner` and notes it as `op` (status calls as
 * `status:<touch>`), so a test can count round trips and see what they touched.
 */
export function recordingStore(inner: QueueStore): { store: QueueStore; calls: string[] } {
  const calls: string[] = [];
  const store: QueueStore = {
    kind: inner.kind,
    issue(...args) {
      calls.push("issue");
      return inner.issue(...args);
    },
    status(refs, now, idle, touch, restore) {
      calls.push(`status:${JSON.stringify(touch)}`);
      return inner.status(refs, now, idle, touch, restore);
    },
    admit(...args) {
      calls.push("admit");
      return inner.admit(...args);
    },
    expire(...args) {
      calls.push("expire");
      return inner.expire(...args);
    },
    syncTokenSecrets(...args) {
      calls.push("syncTokenSecrets");
      return inner.syncTokenSecrets(...args);
    },
    tokenSecret() {
      calls.push("tokenSecret");
      return inner.tokenSecret();
    },
  };
  return { store, calls };
}
