import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createSecureContext } from "node:tls";
import { availableParallelism } from "node:os";
import { z } from "zod";

/**
 * The only reader of process.env. Parsed once at boot; a bad value stops the
 * process with a message naming the variable.
 */

const DURATION = /^(\d+)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "300", "300ms", "30s", "5m", "1h" -> milliseconds (a bare number is ms). */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new Error(`not a duration: "${text}" (use e.g. 500ms, 30s, 5m)`);
  return Number(m[1]) * UNIT_MS[(m[2] ?? "ms") as keyof typeof UNIT_MS];
}

/** A duration with a floor: a zero tick would spin, a zero TTL would expire everything at once. */
const duration = (fallback: string, minMs: number) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      try {
        const ms = parseDuration(v);
        if (ms < minMs) {
          ctx.addIssue({ code: "custom", message: `must be at least ${minMs} ms` });
          return z.NEVER;
        }
        return ms;
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
        return z.NEVER;
      }
    });

/** Digits only: " " or "8e3" are mistakes, not numbers. */
const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(max)).prefault(String(fallback));

const list = z
  .string()
  .default("")
  .transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

const truthy = (v: string) => v === "true" || v === "1" || v === "yes";

/** A rate limit: "N/duration" (e.g. "10/1m": ten calls a minute) or "off". */
export interface RateLimit {
  points: number;
  durationMs: number;
}

export function parseRateLimit(text: string): RateLimit | undefined {
  const t = text.trim();
  if (t === "off") return undefined;
  const m = /^(\d+)\/(.+)$/.exec(t);
  if (!m) throw new Error(`not a rate limit: "${text}" (use e.g. 10/1m, or off)`);
  const points = Number(m[1]);
  const durationMs = parseDuration(m[2]);
  if (points < 1 || points > 1_000_000) throw new Error(`calls must be 1-1000000 in "${text}"`);
  if (durationMs < 1000 || durationMs % 1000 !== 0) throw new Error(`the window must be whole seconds, at least 1s, in "${text}"`);
  return { points, durationMs };
}

const rateLimit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      try {
        return parseRateLimit(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
        return z.NEVER;
      }
    });

const onOff = (fallback: "on" | "off") =>
  z
    .enum(["on", "off", "true", "false", "1", "0", "yes", "no"])
    .default(fallback)
    .transform((v) => v === "on" || truthy(v));

/** A port that may be switched off ("off"). */
const optionalPort = (fallback: number) =>
  z
    .string()
    .default(String(fallback))
    .transform((v, ctx) => {
      if (v === "off") return undefined;
      if (!/^\d+$/.test(v) || Number(v) > 65535) {
        ctx.addIssue({ code: "custom", message: "must be a port number (0-65535) or off" });
        return z.NEVER;
      }
      return Number(v);
    });

/**
 * QUEUE_TOKEN_SECRETS: comma-separated; each plain text of at least 32
 * characters (used as its UTF-8 bytes), or `base64:` and at least 32 bytes
 * in base64 (e.g. the value Redis held before, `<prefix>secret`).
 */
const tokenSecrets = z
  .string()
  .default("")
  .transform((v, ctx) => {
    const secrets: Buffer[] = [];
    for (const item of v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)) {
      const b64 = /^base64:(.*)$/.exec(item);
      const bytes = b64 ? Buffer.from(b64[1], "base64") : Buffer.from(item);
      const why =
        b64 && bytes.toString("base64").replace(/=+$/, "") !== b64[1].replace(/=+$/, "")
          ? "is not base64"
          : bytes.length < 32
            ? "is shorter than 32 bytes"
            : undefined;
      if (why) {
        ctx.addIssue({ code: "custom", message: `secret ${secrets.length + 1} ${why}` });
        return z.NEVER;
      }
      secrets.push(bytes);
    }
    return secrets;
  });

/** REDIS_SENTINELS: comma-separated host:port. */
const sentinelList = list.transform((items, ctx) =>
  items.map((item) => {
    const m = /^(.+):(\d{1,5})$/.exec(item);
    if (!m || Number(m[2]) > 65535) {
      ctx.addIssue({ code: "custom", message: `"${item}" is not host:port` });
      return { host: "", port: 0 };
    }
    return { host: m[1], port: Number(m[2]) };
  }),
);

/** WORKERS: a count of server processes, or "auto" (one per core). */
const workers = z
  .string()
  .default("1")
  .transform((v, ctx) => {
    if (v === "auto") return v;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 256) {
      ctx.addIssue({ code: "custom", message: "must be auto or a whole number 1-256" });
      return z.NEVER;
    }
    return Number(v);
  });

const schema = z.object({
  HOST: z.string().min(1).default("0.0.0.0"),
  WORKERS: workers,
  PORT: int(8080, 0, 65535),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CORS_ORIGINS: list,
  /** Request headers browsers may send besides the protocol's and ours (e.g. traceparent,baggage). */
  CORS_ALLOWED_HEADERS: list.pipe(z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be header names, comma-separated"))),
  /** Both or neither: with them the port speaks TLS (HTTP/2 and HTTP/1.1 by ALPN). */
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  /** The built on-sale page, served at / on the API's origin; "off": none. */
  PAGE_DIR: z.string().min(1).default("web/dist"),
  SHUTDOWN_GRACE: duration("10s", 0),
  /** X-Forwarded-For entries appended by proxies we trust (0: the socket's address is the client). */
  TRUST_PROXY_HOPS: int(0, 0, 10),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  METRICS_PORT: optionalPort(9464),

  HEADERS_TIMEOUT: duration("5s", 100),
  KEEPALIVE_TIMEOUT: duration("5s", 100),
  HTTP2_IDLE_TIMEOUT: duration("60s", 100),
  HTTP2_MAX_CONCURRENT_STREAMS: int(100, 1, 10_000),

  AUTH_MODE: z.enum(["jwt", "none"]).optional(),
  AUTH_JWKS: z.string().min(1).optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_CLOCK_TOLERANCE: duration("30s", 0),
  AUTH_JWKS_COOLDOWN: duration("30s", 0),

  RATE_LIMITS: onOff("on"),
  RATE_LIMIT_UNAUTHENTICATED: rateLimit("600/1m"),
  RATE_LIMIT_ISSUE_TOKEN: rateLimit("10/1m"),
  RATE_LIMIT_ISSUE_TOKEN_ADDRESS: rateLimit("120/1m"),
  RATE_LIMIT_HOLD_SEAT: rateLimit("30/1m"),
  RATE_LIMIT_HOLD_SEAT_ADDRESS: rateLimit("600/1m"),
  RATE_LIMIT_CHARGE: rateLimit("30/1m"),
  RATE_LIMIT_CHARGE_ADDRESS: rateLimit("600/1m"),

  DATABASE_URL: z.string().url().optional(),
  DB_POOL_MAX: int(10, 1, 200),
  /** Set on every connection to a real PostgreSQL (the embedded PGlite has no timers); 0: not set here. */
  DB_STATEMENT_TIMEOUT: duration("5s", 0),
  DB_LOCK_TIMEOUT: duration("2s", 0),
  DB_IDLE_IN_TRANSACTION_TIMEOUT: duration("10s", 0),
  PGLITE_DATA_DIR: z.string().min(1).default(".data/pglite"),
  /** Unset: seed the embedded database only. */
  SEED_DEMO_CATALOG: z.enum(["true", "false", "1", "0", "yes", "no"]).optional(),

  REDIS_URLS: list,
  REDIS_SENTINELS: sentinelList,
  REDIS_SENTINEL_NAME: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_COMMAND_TIMEOUT: duration("1s", 10),
  QUEUE_REDIS_PREFIX: z.string().min(1).max(100).default("boxoffice:queue:"),

  QUEUE_MAX_ACTIVE: int(500, 1),
  QUEUE_ADMIT_PER_SECOND: int(50, 1),
  QUEUE_ACTIVE_TTL: duration("10m", 1000),
  QUEUE_IDLE_TTL: duration("2m", 1000),
  QUEUE_ACTIVE_IDLE_TTL: duration("2m", 1000),
  QUEUE_MAX_STREAMS_PER_TOKEN: int(4, 1, 100),
  QUEUE_TICK: duration("250ms", 10),
  QUEUE_STREAM_POSITION_INTERVAL: duration("1s", 0),
  QUEUE_TOKEN_SECRETS: tokenSecrets,
  QUEUE_RESTORE_MAX_AGE: duration("6h", 60_000),

  /** 0: the concert list and dates are read from the database on every call. */
  CATALOG_CACHE_TTL: duration("1s", 0),

  HOLD_TTL: duration("5m", 1000),
  HOLD_MAX_PER_USER: int(4, 1, 50),
  HOLD_LOCK_TTL: duration("2s", 10),
  HOLD_SWEEP_INTERVAL: duration("30s", 1000),

  CHARGE_MAX: int(10_000_000, 1),
  BALANCE_MAX: int(1_000_000_000_000, 1),
});

/** Variables as the environment gives them. */
export type Env = Record<string, string | undefined>;

export interface Config {
  host: string;
  port: number;
  /** Server processes sharing the port (node:cluster); 1: this process serves. */
  workers: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  corsOrigins: string[];
  /** Extra request headers a CORS preflight may ask for. */
  corsAllowedHeaders: string[];
  /** Set: the public port speaks TLS. */
  tls?: TlsConfig;
  /** Absolute path of the built page served at /; undefined: none (PAGE_DIR=off). */
  pageDir?: string;
  shutdownGraceMs: number;
  /** Where Prometheus metrics are served; undefined: nowhere. */
  metrics?: { host: string; port: number };
  connections: { trustProxyHops: number; headersTimeoutMs: number; keepAliveTimeoutMs: number; http2IdleTimeoutMs: number; http2MaxConcurrentStreams: number };
  auth: AuthConfig;
  rateLimits: RateLimitConfig;
  database: { url?: string; poolMax: number; pgliteDataDir: string; seedDemoCatalog?: boolean; timeouts: DatabaseTimeouts };
  redisUrls: string[];
  /** Set: the queue (and the shared call budgets) use the master these sentinels name. */
  redisSentinel?: { sentinels: { host: string; port: number }[]; name: string; password?: string };
  /** Every Redis command fails after this long without a reply. */
  redisCommandTimeoutMs: number;
  queue: {
    maxActive: number;
    admitPerSecond: number;
    activeTtlMs: number;
    idleTtlMs: number;
    /** An ACTIVE ticket whose user makes no gated call for this long gives its slot back. */
    activeIdleTtlMs: number;
    tickMs: number;
    streamPositionIntervalMs: number;
    /** Open WatchQueueStatus streams one token may hold on one instance. */
    maxStreamsPerToken: number;
    redisPrefix: string;
    /** The first signs queue tokens, all verify. Empty: a secret kept in the queue's store. */
    tokenSecrets: Buffer[];
    /** After the queue's Redis lost its data, a WAITING token issued longer ago is not put back in line. */
    restoreMaxAgeMs: number;
  };
  hold: { ttlMs: number; maxPerUser: number; lockTtlMs: number; sweepIntervalMs: number };
  /** How stale a cached concert list or date list may be; 0: not cached. */
  catalogCacheTtlMs: number;
  wallet: { chargeMax: number; balanceMax: number };
}

/** The certificate chain and private key (PEM), read once at start. */
export interface TlsConfig {
  cert: Buffer;
  key: Buffer;
}

/** Set on every connection to a real PostgreSQL; 0: not set here (the role's or server's setting applies, by default none). */
export interface DatabaseTimeouts {
  /** statement_timeout: the longest one statement may run (lock waits included). */
  statementMs: number;
  /** lock_timeout: the longest one statement may wait for a row or table lock. */
  lockMs: number;
  /** idle_in_transaction_session_timeout: a session idle this long inside a transaction is ended, releasing its locks. */
  idleInTransactionMs: number;
}

export type AuthConfig =
  | { mode: "none" }
  | {
      mode: "jwt";
      /** A JWKS URL (http/https) or the path of a local JWKS JSON file. */
      jwks: string;
      issuer: string;
      audience: string;
      clockToleranceMs: number;
      /** Least time between two reloads of the key set when a token names an unknown key. */
      jwksCooldownMs: number;
    };

/** Each limit: undefined when "off". Per user and per client address. */
export interface RateLimitConfig {
  enabled: boolean;
  unauthenticated?: RateLimit;
  issueToken?: RateLimit;
  issueTokenAddress?: RateLimit;
  holdSeat?: RateLimit;
  holdSeatAddress?: RateLimit;
  charge?: RateLimit;
  chargeAddress?: RateLimit;
}

export class ConfigError extends Error {}

type Parsed = z.infer<typeof schema>;

function authConfig(e: Parsed, serving: boolean): AuthConfig {
  // A one-shot command (migrate, seed) answers no calls: there is nobody to authenticate.
  const mode = e.AUTH_MODE ?? (e.DATABASE_URL && serving ? undefined : "none");
  if (!mode)
    throw new ConfigError(
      "invalid configuration:\n  AUTH_MODE: must be set when DATABASE_URL is set: jwt (verify callers' bearer tokens) or none (trust the user ids in requests)",
    );
  if (mode === "none") return { mode };
  const missing = (["AUTH_JWKS", "AUTH_ISSUER", "AUTH_AUDIENCE"] as const).filter((k) => !e[k]);
  if (missing.length) throw new ConfigError(`invalid configuration:\n${missing.map((k) => `  ${k}: required with AUTH_MODE=jwt`).join("\n")}`);
  return {
    mode,
    jwks: e.AUTH_JWKS!,
    issuer: e.AUTH_ISSUER!,
    audience: e.AUTH_AUDIENCE!,
    clockToleranceMs: e.AUTH_CLOCK_TOLERANCE,
    jwksCooldownMs: e.AUTH_JWKS_COOLDOWN,
  };
}

/** Reads the PEM files at start, so a wrong path or a key that does not match the certificate stops the boot, not the first handshake. */
function tlsConfig(e: Parsed, serving: boolean): TlsConfig | undefined {
  if (!e.TLS_CERT_FILE && !e.TLS_KEY_FILE) return undefined;
  if (!e.TLS_CERT_FILE || !e.TLS_KEY_FILE)
    throw new ConfigError(
      `invalid configuration:\n  ${e.TLS_CERT_FILE ? "TLS_KEY_FILE" : "TLS_CERT_FILE"}: required with ${e.TLS_CERT_FILE ? "TLS_CERT_FILE" : "TLS_KEY_FILE"} (set both for TLS, or neither)`,
    );
  // A one-shot command does not listen.
  if (!serving) return undefined;
  const read = (name: "TLS_CERT_FILE" | "TLS_KEY_FILE") => {
    try {
      return readFileSync(e[name]!);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${name}: cannot read ${e[name]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const tls = { cert: read("TLS_CERT_FILE"), key: read("TLS_KEY_FILE") };
  try {
    createSecureContext(tls);
  } catch (err) {
    throw new ConfigError(
      `invalid configuration:\n  TLS_CERT_FILE, TLS_KEY_FILE: not a usable PEM certificate and matching private key (${(err as Error).message})`,
    );
  }
  return tls;
}

/**
 * Reads the configuration from an environment (process.env by default).
 * `serving: false` is for one-shot commands (migrate, seed), which need no AUTH_MODE.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, options: { serving?: boolean } = {}): Config {
  const blank = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(blank);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  if (e.CHARGE_MAX > e.BALANCE_MAX) throw new ConfigError("invalid configuration:\n  CHARGE_MAX: must not exceed BALANCE_MAX");
  if (e.REDIS_SENTINELS.length && !e.REDIS_SENTINEL_NAME) throw new ConfigError("invalid configuration:\n  REDIS_SENTINEL_NAME: required with REDIS_SENTINELS");
  if (e.REDIS_SENTINEL_NAME && !e.REDIS_SENTINELS.length) throw new ConfigError("invalid configuration:\n  REDIS_SENTINELS: required with REDIS_SENTINEL_NAME");
  // Each worker is an instance of its own: an in-process queue or lock table, or an embedded database, would be one per worker.
  if ((options.serving ?? true) && (e.WORKERS === "auto" || e.WORKERS > 1) && (!e.DATABASE_URL || (!e.REDIS_URLS.length && !e.REDIS_SENTINELS.length)))
    throw new ConfigError(
      `invalid configuration:\n  WORKERS: ${e.WORKERS} needs DATABASE_URL (PostgreSQL) and REDIS_URLS or REDIS_SENTINELS (the queue and locks on Redis); on the embedded default or with an in-process queue, run one worker`,
    );
  return {
    host: e.HOST,
    port: e.PORT,
    workers: e.WORKERS === "auto" ? availableParallelism() : e.WORKERS,
    logLevel: e.LOG_LEVEL,
    corsOrigins: e.CORS_ORIGINS,
    corsAllowedHeaders: e.CORS_ALLOWED_HEADERS,
    tls: tlsConfig(e, options.serving ?? true),
    pageDir: e.PAGE_DIR === "off" ? undefined : resolve(e.PAGE_DIR),
    shutdownGraceMs: e.SHUTDOWN_GRACE,
    metrics: e.METRICS_PORT === undefined ? undefined : { host: e.METRICS_HOST, port: e.METRICS_PORT },
    connections: {
      trustProxyHops: e.TRUST_PROXY_HOPS,
      headersTimeoutMs: e.HEADERS_TIMEOUT,
      keepAliveTimeoutMs: e.KEEPALIVE_TIMEOUT,
      http2IdleTimeoutMs: e.HTTP2_IDLE_TIMEOUT,
      http2MaxConcurrentStreams: e.HTTP2_MAX_CONCURRENT_STREAMS,
    },
    auth: authConfig(e, options.serving ?? true),
    rateLimits: {
      enabled: e.RATE_LIMITS,
      unauthenticated: e.RATE_LIMIT_UNAUTHENTICATED,
      issueToken: e.RATE_LIMIT_ISSUE_TOKEN,
      issueTokenAddress: e.RATE_LIMIT_ISSUE_TOKEN_ADDRESS,
      holdSeat: e.RATE_LIMIT_HOLD_SEAT,
      holdSeatAddress: e.RATE_LIMIT_HOLD_SEAT_ADDRESS,
      charge: e.RATE_LIMIT_CHARGE,
      chargeAddress: e.RATE_LIMIT_CHARGE_ADDRESS,
    },
    database: {
      url: e.DATABASE_URL,
      poolMax: e.DB_POOL_MAX,
      pgliteDataDir: e.PGLITE_DATA_DIR,
      seedDemoCatalog: e.SEED_DEMO_CATALOG === undefined ? undefined : truthy(e.SEED_DEMO_CATALOG),
      timeouts: { statementMs: e.DB_STATEMENT_TIMEOUT, lockMs: e.DB_LOCK_TIMEOUT, idleInTransactionMs: e.DB_IDLE_IN_TRANSACTION_TIMEOUT },
    },
    redisUrls: e.REDIS_URLS,
    redisSentinel: e.REDIS_SENTINEL_NAME ? { sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME, password: e.REDIS_SENTINEL_PASSWORD } : undefined,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT,
    queue: {
      maxActive: e.QUEUE_MAX_ACTIVE,
      admitPerSecond: e.QUEUE_ADMIT_PER_SECOND,
      activeTtlMs: e.QUEUE_ACTIVE_TTL,
      idleTtlMs: e.QUEUE_IDLE_TTL,
      activeIdleTtlMs: e.QUEUE_ACTIVE_IDLE_TTL,
      maxStreamsPerToken: e.QUEUE_MAX_STREAMS_PER_TOKEN,
      tickMs: e.QUEUE_TICK,
      streamPositionIntervalMs: e.QUEUE_STREAM_POSITION_INTERVAL,
      redisPrefix: e.QUEUE_REDIS_PREFIX,
      tokenSecrets: e.QUEUE_TOKEN_SECRETS,
      restoreMaxAgeMs: e.QUEUE_RESTORE_MAX_AGE,
    },
    hold: { ttlMs: e.HOLD_TTL, maxPerUser: e.HOLD_MAX_PER_USER, lockTtlMs: e.HOLD_LOCK_TTL, sweepIntervalMs: e.HOLD_SWEEP_INTERVAL },
    catalogCacheTtlMs: e.CATALOG_CACHE_TTL,
    wallet: { chargeMax: e.CHARGE_MAX, balanceMax: e.BALANCE_MAX },
  };
}
