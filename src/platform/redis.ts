import { type Command, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";

export type { Redis };

export interface RedisClientOptions {
  /** A command without a reply for this long fails (UNAVAILABLE to callers) instead of hanging the call. */
  commandTimeoutMs?: number;
}

/** A replicated Redis behind Sentinel: the clients follow its master through failovers. */
export interface RedisSentinelConfig {
  sentinels: { host: string; port: number }[];
  /** The master's name in the sentinels' configuration. */
  name: string;
  /** The sentinels' own password, if they require one. */
  password?: string;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

/**
 * Commands fail fast while a node is down (no offline queue) or hung (the
 * command timeout of withCommandTimeout), so callers answer UNAVAILABLE instead of
 * hanging.
 */
function clientOptions(): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  };
}

/**
 * A command timeout that a busy event loop cannot trip.
 *
 * ioredis's own `commandTimeout` rejects from a timer. Timers run before the
 * event loop reads its sockets, so after one long turn (an on-sale burst of
 * thousands of calls arriving at once) every command sent before it timed
 * out, although Redis had answered in a millisecond and the reply sat unread
 * in the socket: 73 % of 10,000 IssueTokens failed "unreachable" with Redis at
 * 6 % CPU. Here the timer only schedules the verdict for after the sockets
 * are read (setImmediate runs after the poll phase), so a command fails only
 * if its reply has really not come.
 */
function withCommandTimeout(client: Redis, timeoutMs: number): Redis {
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command: Command, stream?: Parameters<Redis["sendCommand"]>[1]) => {
    const sent = send(command, stream);
    if (!command.isSettled) {
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (!command.isSettled) command.reject(new Error("Command timed out"));
        });
      }, timeoutMs);
      timer.unref();
      // Settled either way: no timer is kept for a reply that came.
      const done = () => clearTimeout(timer);
      command.promise.then(done, done);
    }
    return sent;
  };
  return client;
}

function createClient(options: RedisClientOptions, target: string | RedisOptions): Redis {
  const timeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const client = typeof target === "string" ? new Redis(target, clientOptions()) : new Redis({ ...clientOptions(), ...target });
  return withCommandTimeout(client, timeoutMs);
}

/** One error line per outage, one line when it is over. */
function reportOutages(client: Redis, label: string, log: Logger): Redis {
  let reported = false;
  client.on("error", (err) => {
    if (!reported) log.warn({ redis: label, err: err.message }, "redis connection error");
    reported = true;
  });
  client.on("ready", () => {
    if (reported) log.info({ redis: label }, "redis connection restored");
    reported = false;
  });
  return client;
}

async function connectAll(clients: Redis[]): Promise<Redis[]> {
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (err) {
    for (const c of clients) c.disconnect();
    throw err;
  }
  return clients;
}

/**
 * One client per configured node. Without Sentinel the first node holds the
 * queue; all of them vote in Redlock.
 */
export async function connectRedis(urls: string[], log: Logger, options: RedisClientOptions = {}): Promise<Redis[]> {
  return connectAll(urls.map((url) => reportOutages(createClient(options, url), redact(url), log)));
}

/**
 * A client of the master Sentinel names. When its connection drops (the
 * master died) it asks the sentinels again on reconnect; a master demoted to
 * replica answers writes READONLY, which also makes it reconnect. Not
 * ioredis's failoverDetector: a switch-master notice that arrives while a
 * reconnect is under way ends the client for good.
 */
export async function connectRedisSentinel(config: RedisSentinelConfig, log: Logger, options: RedisClientOptions = {}): Promise<Redis> {
  const client = createClient(options, {
    sentinels: config.sentinels,
    name: config.name,
    sentinelPassword: config.password,
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
  });
  const [connected] = await connectAll([reportOutages(client, `sentinel master ${config.name}`, log)]);
  return connected;
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

/** Polite QUIT where the connection is up; a node that is down is just dropped (and not retried); a closed one is left alone. */
export async function closeRedis(clients: Redis[]): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      if (c.status === "end") return;
      if (c.status !== "ready") return c.disconnect();
      await c.quit().catch(() => c.disconnect());
    }),
  );
}
