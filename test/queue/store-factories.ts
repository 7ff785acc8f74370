import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { createMemoryQueueStore } from "../../src/modules/queue/memory-queue-store";
import type { QueueStore } from "../../src/modules/queue/queue-store";
import { createRedisQueueStore } from "../../src/modules/queue/redis-queue-store";
import { testRedisUrl } from "../harness";

export interface StoreFactory {
  name: string;
  /** A fresh, empty store. `count` > 1 gives several handles on the same queue (several instances). */
  create(count?: number): Promise<QueueStore[]>;
  /**
   * The last store created loses all its data, as in an empty restart. Handles on it afterwards: for Redis the same
   * ones (the instances live on), for the single-process store a new one (its data was the process).
   */
  lose(): Promise<QueueStore[]>;
  close(): Promise<void>;
}

export function memoryFactory(): StoreFactory {
  return {
    name: "memory",
    async create(count = 1) {
      if (count > 1) throw new Error("the single-process store has one instance by design");
      return [createMemoryQueueStore()];
    },
    async lose() {
      return [createMemoryQueueStore()];
    },
    async close() {},
  };
}

export function redisFactory(): StoreFactory {
  const clients: Redis[] = [];
  let last: { prefix: string; stores: QueueStore[] } | undefined;
  return {
    name: "redis",
    async create(count = 1) {
      const prefix = `test:${randomBytes(4).toString("hex")}:`;
      const stores: QueueStore[] = [];
      for (let i = 0; i < count; i++) {
        const client = new Redis(testRedisUrl());
        clients.push(client);
        stores.push(createRedisQueueStore(client, prefix));
      }
      last = { prefix, stores };
      return stores;
    },
    async lose() {
      if (!last) throw new Error("create() a store first");
      const keys = await clients[0].keys(`${last.prefix}*`);
      if (keys.length) await clients[0].del(...keys);
      return last.stores;
    },
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.quit()));
    },
  };
}
