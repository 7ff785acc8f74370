import type { Clock } from "../../platform/clock.js";
import type { Concert } from "./concert.entity.js";
import type { AvailableDate } from "./concert.service.js";

/**
 * Answers kept for at most `ttlMs` after the read that produced them began.
 * Concurrent misses of one key share one load (an on-sale herd costs one
 * query, not one per caller); a failed load is not kept. `ttlMs` 0: every
 * call loads.
 *
 * Not lru-cache's fetch(): deleting a key while its fetch runs either rejects
 * the callers already waiting on it or stores the pre-delete result. Here an
 * invalidation drops the entry, later callers start a fresh load, and a load
 * that began before the invalidation still answers its own callers but is
 * never stored.
 */
export interface ReadCache<K, V> {
  get(key: K, load: () => Promise<V>): Promise<V>;
  /** Drops `key`, or every key. */
  invalidate(key?: K): void;
}

export function createReadCache<K, V>(clock: Clock, ttlMs: number): ReadCache<K, V> {
  interface Entry {
    value: Promise<V>;
    /** Infinity while the load runs: its callers all wait for the one answer. */
    expiresAt: number;
  }
  const entries = new Map<K, Entry>();
  return {
    get(key, load) {
      if (ttlMs === 0) return load();
      const startedAt = clock.now().getTime();
      const hit = entries.get(key);
      if (hit && startedAt < hit.expiresAt) return hit.value;
      const entry: Entry = { value: Promise.resolve().then(load), expiresAt: Infinity };
      entries.set(key, entry);
      entry.value.then(
        () => {
          if (entries.get(key) === entry) entry.expiresAt = startedAt + ttlMs;
        },
        () => {
          if (entries.get(key) === entry) entries.delete(key);
        },
      );
      return entry.value;
    },
    invalidate(key) {
      if (key === undefined) entries.clear();
      else entries.delete(key);
    },
  };
}

/**
 * The catalog reads an on-sale herd repeats: the concert list and each
 * concert's dates with their free-seat counts. Seat lists are never cached.
 */
export interface CatalogCache {
  concerts: ReadCache<"all", Concert[]>;
  /** By concert id. */
  dates: ReadCache<string, AvailableDate[]>;
  /**
   * Call after this instance committed a change to which seats are free
   * (hold, cancel, payment) of `concertId`; without an id, of any concert.
   * Other instances' writes and holds that lapse show within the TTL.
   */
  seatsChanged(concertId?: string): void;
}

export function createCatalogCache(clock: Clock, ttlMs: number): CatalogCache {
  const dates = createReadCache<string, AvailableDate[]>(clock, ttlMs);
  return {
    concerts: createReadCache<"all", Concert[]>(clock, ttlMs),
    dates,
    seatsChanged: (concertId) => dates.invalidate(concertId),
  };
}
