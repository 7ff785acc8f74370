import Redlock, { ExecutionError, ResourceLockedError } from "redlock";
import type { Logger } from "./logger.js";
import type { Redis } from "./redis.js";

/** A held lock. Its owner must assume it is gone after `expiresAt` (epoch ms). */
export interface Lease {
  readonly expiresAt: number;
  release(): Promise<void>;
}

/** Why a lock was not granted. */
export type LockRefusal = "busy" | "unavailable";

/**
 * Short mutual-exclusion leases that fail fast (no retries): losers learn at
 * once that someone else holds the key. Locks only cut contention; the
 * database stays the final guard of every invariant.
 */
export interface Locks {
  tryAcquire(key: string, ttlMs: number): Promise<Lease | LockRefusal>;
  readonly kind: "redlock" | "local";
}

/** Redlock over one Redis node, or a quorum of several. */
export function createRedlockLocks(clients: Redis[], log: Logger): Locks {
  const redlock = new Redlock(clients, { retryCount: 0, driftFactor: 0.01, automaticExtensionThreshold: 0 });
  redlock.on("error", (err) => {
    // A quorum can still be reached with one node down; a refusal of a busy
    // key is routine. Anything else is worth a line.
    if (!(err instanceof ResourceLockedError)) log.debug({ err: (err as Error).message }, "redlock node error");
  });
  return {
    kind: "redlock",
    async tryAcquire(key, ttlMs) {
      try {
        const lock = await redlock.acquire([key], ttlMs);
        return {
          expiresAt: lock.expiration,
          release: async () => {
            await lock.release().catch(() => undefined); // expires by itself anyway
          },
        };
      } catch (err) {
        if (err instanceof ExecutionError) return (await lockedByOthers(err)) ? "busy" : "unavailable";
        throw err;
      }
    },
  };
}

/** True when the quorum failed because other owners hold the key, not because nodes are down. */
async function lockedByOthers(err: ExecutionError): Promise<boolean> {
  const stats = await Promise.all(err.attempts);
  const last = stats[stats.length - 1];
  if (!last) return false;
  let locked = 0;
  for (const e of last.votesAgainst.values()) if (e instanceof ResourceLockedError) locked++;
  return locked > 0 && locked + last.votesFor.size >= last.quorumSize;
}

/** In-process leases with the same semantics, for a single server on the embedded default. */
export function createLocalLocks(now: () => number = Date.now): Locks {
  const held = new Map<string, { token: symbol; expiresAt: number }>();
  return {
    kind: "local",
    async tryAcquire(key, ttlMs) {
      const t = now();
      if (held.size > 10_000) for (const [k, l] of held) if (l.expiresAt <= t) held.delete(k);
      const current = held.get(key);
      if (current && current.expiresAt > t) return "busy";
      const lease = { token: Symbol(key), expiresAt: t + ttlMs };
      held.set(key, lease);
      return {
        expiresAt: lease.expiresAt,
        release: async () => {
          if (held.get(key)?.token === lease.token) held.delete(key);
        },
      };
    },
  };
}
