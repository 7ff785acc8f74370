import { randomBytes } from "node:crypto";
import type { QueueStore } from "./queue-store.js";

/** The secrets of queue tokens as one instance uses them now. */
export interface TokenKeys {
  signing: Buffer;
  /** The signing key first. */
  verifying: readonly Buffer[];
}

export interface TokenKeyRing {
  keys(): Promise<TokenKeys>;
  /** A token did not verify: the keys re-read from where they are shared, or undefined when that cannot help. */
  reload(): Promise<TokenKeys | undefined>;
  /** Called every admission round: keeps shared keys in step across instances. */
  maintain(): Promise<void>;
}

/** QUEUE_TOKEN_SECRETS: the first signs, all verify; nothing is shared through the store. */
export function fixedKeyRing(secrets: Buffer[]): TokenKeyRing {
  if (!secrets.length) throw new Error("at least one token secret is needed");
  const keys: TokenKeys = { signing: secrets[0], verifying: secrets };
  return {
    keys: async () => keys,
    reload: async () => undefined,
    maintain: async () => {},
  };
}

/** How often an instance re-reads the shared secret, writing its own back if the store lost it. */
export const SECRET_SYNC_MS = 1000;
/** Least time between re-reads caused by tokens that do not verify: forgeries must not hammer the store. */
const RELOAD_MIN_MS = 100;

/**
 * Without configured secrets the signing secret lives in the store and every
 * instance caches it. An empty restart of the store must not split them: an
 * instance that finds the secret gone writes back the one it has (the first
 * writer wins, so whoever comes first, everyone adopts the same one), and
 * every secret an instance has signed with stays in the store's verify set,
 * so tokens signed before keep verifying everywhere, also on an instance
 * started after the loss (it re-reads the set when a token fails to verify).
 */
export function sharedKeyRing(store: Pick<QueueStore, "syncTokenSecrets">, now: () => number): TokenKeyRing {
  let keys: TokenKeys | undefined;
  const signedWith: Buffer[] = [];
  let syncedAt = -Infinity;
  let inflight: Promise<TokenKeys> | undefined;

  const sync = (): Promise<TokenKeys> =>
    (inflight ??= (async () => {
      try {
        const shared = await store.syncTokenSecrets(keys?.signing ?? randomBytes(32), signedWith);
        if (!signedWith.some((k) => k.equals(shared.signing))) signedWith.push(shared.signing);
        const verifying = [shared.signing];
        for (const k of [...shared.all, ...signedWith]) if (!verifying.some((v) => v.equals(k))) verifying.push(k);
        keys = { signing: shared.signing, verifying };
        syncedAt = now();
        return keys;
      } finally {
        inflight = undefined;
      }
    })());

  return {
    keys: async () => keys ?? sync(),
    async reload() {
      if (now() - syncedAt < RELOAD_MIN_MS) return inflight;
      return sync();
    },
    async maintain() {
      if (now() - syncedAt >= SECRET_SYNC_MS) await sync();
    },
  };
}
