import { Redis } from "ioredis";
import type { Logger } from "./logger.js";

export type { Redis };

/**
 * One client per configured node. The first node holds the queue; all of them
 * vote in Redlock. Commands fail fast while a node is down (no offline queue),
 * so callers answer UNAVAILABLE instead of hanging.
 */
export async function connectRedis(urls: string[], log: Logger): Promise<Redis[]> {
  const clients = urls.map((url) => {
    const client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    let reported = false;
    client.on("error", (err) => {
      if (!reported) log.warn({ redis: redact(url), err: err.message }, "redis connection error");
      reported = true;
    });
    client.on("ready", () => {
      if (reported) log.info({ redis: redact(url) }, "redis connection restored");
      reported = false;
    });
    return client;
  });
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (err) {
    clients.forEach((c) => c.disconnect());
    throw err;
  }
  return clients;
}

/** Hide a password in a URL before it is logged. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable url)";
  }
}

/** Polite QUIT where the connection is up; a node that is down is just dropped (and not retried). */
export async function closeRedis(clients: Redis[]): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      if (c.status !== "ready") return c.disconnect();
      await c.quit().catch(() => c.disconnect());
    }),
  );
}
