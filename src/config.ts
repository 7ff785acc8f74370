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
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .prefault(String(fallback));

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

const schema = z.object({
  HOST: z.string().min(1).default("0.0.0.0"),
  PORT: int(8080, 0, 65535),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CORS_ORIGINS: list,
  SHUTDOWN_GRACE: duration("10s", 0),

  DATABASE_URL: z.string().url().optional(),
  DB_POOL_MAX: int(10, 1, 200),
  PGLITE_DATA_DIR: z.string().min(1).default(".data/pglite"),
  /** Unset: seed the embedded database only. */
  SEED_DEMO_CATALOG: z.enum(["true", "false", "1", "0", "yes", "no"]).optional(),

  REDIS_URLS: list,
  QUEUE_REDIS_PREFIX: z.string().min(1).max(100).default("boxoffice:queue:"),

  QUEUE_MAX_ACTIVE: int(500, 1),
  QUEUE_ADMIT_PER_SECOND: int(50, 1),
  QUEUE_ACTIVE_TTL: duration("10m", 1000),
  QUEUE_IDLE_TTL: duration("2m", 1000),
  QUEUE_TICK: duration("250ms", 10),
  QUEUE_STREAM_POSITION_INTERVAL: duration("1s", 0),

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
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  corsOrigins: string[];
  shutdownGraceMs: number;
  database: { url?: string; poolMax: number; pgliteDataDir: string; seedDemoCatalog?: boolean };
  redisUrls: string[];
  queue: { maxActive: number; admitPerSecond: number; activeTtlMs: number; idleTtlMs: number; tickMs: number; streamPositionIntervalMs: number; redisPrefix: string };
  hold: { ttlMs: number; maxPerUser: number; lockTtlMs: number; sweepIntervalMs: number };
  wallet: { chargeMax: number; balanceMax: number };
}

export class ConfigError extends Error {}

/** Reads the configuration from an environment (process.env by default). */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const blank = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(blank);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  if (e.CHARGE_MAX > e.BALANCE_MAX) throw new ConfigError("invalid configuration:\n  CHARGE_MAX: must not exceed BALANCE_MAX");
  return {
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    corsOrigins: e.CORS_ORIGINS,
    shutdownGraceMs: e.SHUTDOWN_GRACE,
    database: { url: e.DATABASE_URL, poolMax: e.DB_POOL_MAX, pgliteDataDir: e.PGLITE_DATA_DIR, seedDemoCatalog: e.SEED_DEMO_CATALOG === undefined ? undefined : truthy(e.SEED_DEMO_CATALOG) },
    redisUrls: e.REDIS_URLS,
    queue: {
      maxActive: e.QUEUE_MAX_ACTIVE,
      admitPerSecond: e.QUEUE_ADMIT_PER_SECOND,
      activeTtlMs: e.QUEUE_ACTIVE_TTL,
      idleTtlMs: e.QUEUE_IDLE_TTL,
      tickMs: e.QUEUE_TICK,
      streamPositionIntervalMs: e.QUEUE_STREAM_POSITION_INTERVAL,
      redisPrefix: e.QUEUE_REDIS_PREFIX,
    },
    hold: { ttlMs: e.HOLD_TTL, maxPerUser: e.HOLD_MAX_PER_USER, lockTtlMs: e.HOLD_LOCK_TTL, sweepIntervalMs: e.HOLD_SWEEP_INTERVAL },
    wallet: { chargeMax: e.CHARGE_MAX, balanceMax: e.BALANCE_MAX },
  };
}
