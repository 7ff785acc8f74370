import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, parseDuration, parseRateLimit, type Env } from "../../src/config";

const root = join(__dirname, "../..");

describe("parseDuration", () => {
  test.each([
    ["5m", 300_000],
    ["30s", 30_000],
    ["250ms", 250],
    ["1h", 3_600_000],
    ["1500", 1500],
    [" 2s ", 2000],
    ["0", 0],
  ])("%p is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["", "5 m", "1.5s", "-1s", "5d", "ms", "abc"])("%p is refused", (text) => {
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });
});

describe("loadConfig", () => {
  test("an empty environment gives the embedded default", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: "0.0.0.0",
      port: 8080,
      logLevel: "info",
      corsOrigins: [],
      shutdownGraceMs: 10_000,
      database: { url: undefined, poolMax: 10, pgliteDataDir: ".data/pglite", seedDemoCatalog: undefined },
      redisUrls: [],
      hold: { ttlMs: 300_000 },
    });
    expect(c.queue).toMatchObject({ maxActive: 500, admitPerSecond: 50, activeTtlMs: 600_000, idleTtlMs: 120_000, tickMs: 250 });
  });

  test("values are parsed: lists, durations, numbers, booleans; empty strings count as unset", () => {
    const c = loadConfig({
      PORT: "9090",
      CORS_ORIGINS: " https://a.test , https://b.test ,",
      REDIS_URLS: "redis://r1:6379,redis://r2:6379,redis://r3:6379",
      SHUTDOWN_GRACE: "30s",
      HOLD_TTL: "90000",
      SEED_DEMO_CATALOG: "yes",
      DATABASE_URL: "postgresql://app:secret@db.internal:5432/boxoffice",
      AUTH_MODE: "none",
      LOG_LEVEL: "",
    });
    expect(c.port).toBe(9090);
    expect(c.corsOrigins).toEqual(["https://a.test", "https://b.test"]);
    expect(c.redisUrls).toHaveLength(3);
    expect(c.shutdownGraceMs).toBe(30_000);
    expect(c.hold.ttlMs).toBe(90_000);
    expect(c.database.seedDemoCatalog).toBe(true);
    expect(c.database.url).toBe("postgresql://app:secret@db.internal:5432/boxoffice");
    expect(c.logLevel).toBe("info");
    expect(loadConfig({ SEED_DEMO_CATALOG: "false" }).database.seedDemoCatalog).toBe(false);
  });

  test.each([
    ["PORT", "http"],
    ["PORT", "70000"],
    ["SHUTDOWN_GRACE", "soon"],
    ["QUEUE_TICK", "1.5s"],
    ["LOG_LEVEL", "loud"],
    ["DATABASE_URL", "not a url"],
    ["SEED_DEMO_CATALOG", "maybe"],
    ["DB_POOL_MAX", "0"],
    ["HOLD_MAX_PER_USER", "51"],
    ["PORT", " "],
    ["PORT", "8e3"],
    ["QUEUE_TICK", "0"],
    ["HOLD_TTL", "0s"],
    ["QUEUE_ACTIVE_TTL", "500ms"],
  ])("%s=%p fails with a message naming the variable", (name, value) => {
    let thrown: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toMatch(new RegExp(`^\\s+${name}: `, "m"));
  });

  test("every bad variable is reported at once", () => {
    expect(() => loadConfig({ PORT: "x", HOLD_TTL: "y" })).toThrow(/PORT: [\s\S]*HOLD_TTL: |HOLD_TTL: [\s\S]*PORT: /);
  });

  test("CHARGE_MAX may not exceed BALANCE_MAX", () => {
    expect(() => loadConfig({ CHARGE_MAX: "100", BALANCE_MAX: "10" })).toThrow(/CHARGE_MAX: must not exceed BALANCE_MAX/);
  });
});

/** The ConfigError loadConfig throws for `env` (fails the test if it does not throw one). */
function configError(env: Env): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}
/** A line of the message naming the variable, as every config error does. */
const naming = (name: string) => new RegExp(`^\\s+${name}: `, "m");

describe("loadConfig: authentication", () => {
  const DATABASE_URL = "postgresql://app:secret@db.internal:5432/boxoffice";
  const jwt = { AUTH_MODE: "jwt", AUTH_JWKS: "https://idp.test/.well-known/jwks.json", AUTH_ISSUER: "https://idp.test/", AUTH_AUDIENCE: "boxoffice" };

  test("the embedded default (no DATABASE_URL) is AUTH_MODE=none", () => {
    expect(loadConfig({}).auth).toEqual({ mode: "none" });
  });

  test("DATABASE_URL without AUTH_MODE is refused, naming AUTH_MODE (an empty AUTH_MODE counts as unset)", () => {
    expect(configError({ DATABASE_URL })).toMatch(naming("AUTH_MODE"));
    expect(configError({ DATABASE_URL, AUTH_MODE: "" })).toMatch(naming("AUTH_MODE"));
  });

  test("DATABASE_URL with AUTH_MODE=none is allowed", () => {
    expect(loadConfig({ DATABASE_URL, AUTH_MODE: "none" }).auth).toEqual({ mode: "none" });
  });

  test("AUTH_MODE=jwt with its variables: defaults of 30 s tolerance and cooldown; durations parsed", () => {
    expect(loadConfig({ DATABASE_URL, ...jwt }).auth).toEqual({
      mode: "jwt",
      jwks: jwt.AUTH_JWKS,
      issuer: jwt.AUTH_ISSUER,
      audience: jwt.AUTH_AUDIENCE,
      clockToleranceMs: 30_000,
      jwksCooldownMs: 30_000,
    });
    expect(loadConfig({ ...jwt, AUTH_JWKS: "/etc/boxoffice/jwks.json", AUTH_CLOCK_TOLERANCE: "5s", AUTH_JWKS_COOLDOWN: "0" }).auth).toMatchObject({
      jwks: "/etc/boxoffice/jwks.json",
      clockToleranceMs: 5000,
      jwksCooldownMs: 0,
    });
  });

  test("AUTH_MODE=jwt without AUTH_JWKS, AUTH_ISSUER and AUTH_AUDIENCE names each of them", () => {
    const message = configError({ DATABASE_URL, AUTH_MODE: "jwt" });
    for (const name of ["AUTH_JWKS", "AUTH_ISSUER", "AUTH_AUDIENCE"]) expect(message).toMatch(naming(name));
  });

  test.each(["AUTH_JWKS", "AUTH_ISSUER", "AUTH_AUDIENCE"])("AUTH_MODE=jwt without %s names it and only it (empty counts as unset)", (name) => {
    for (const value of [undefined, ""]) {
      const message = configError({ ...jwt, [name]: value });
      expect(message).toMatch(naming(name));
      for (const other of ["AUTH_JWKS", "AUTH_ISSUER", "AUTH_AUDIENCE"].filter((n) => n !== name)) expect(message).not.toMatch(naming(other));
    }
  });

  test.each([
    ["AUTH_MODE", "oidc"],
    ["AUTH_MODE", "JWT"],
    ["AUTH_CLOCK_TOLERANCE", "30 seconds"],
    ["AUTH_JWKS_COOLDOWN", "-1s"],
  ])("%s=%p is refused, naming the variable", (name, value) => {
    expect(configError({ ...jwt, [name]: value })).toMatch(naming(name));
  });
});

describe("rate limits", () => {
  test.each([
    ["10/1m", { points: 10, durationMs: 60_000 }],
    ["600/1m", { points: 600, durationMs: 60_000 }],
    ["1/1s", { points: 1, durationMs: 1000 }],
    ["5/1h", { points: 5, durationMs: 3_600_000 }],
    ["30/2000ms", { points: 30, durationMs: 2000 }],
    [" 3/10s ", { points: 3, durationMs: 10_000 }],
    ["1000000/1s", { points: 1_000_000, durationMs: 1000 }],
    ["off", undefined],
  ])("%p parses to %p", (text, limit) => {
    expect(parseRateLimit(text)).toEqual(limit);
  });

  test("the defaults, and the values given", () => {
    const c = loadConfig({});
    expect(c.rateLimits).toEqual({
      enabled: true,
      unauthenticated: { points: 600, durationMs: 60_000 },
      issueToken: { points: 10, durationMs: 60_000 },
      issueTokenAddress: { points: 120, durationMs: 60_000 },
      holdSeat: { points: 30, durationMs: 60_000 },
      holdSeatAddress: { points: 600, durationMs: 60_000 },
      charge: { points: 30, durationMs: 60_000 },
      chargeAddress: { points: 600, durationMs: 60_000 },
    });
    const d = loadConfig({ RATE_LIMITS: "off", RATE_LIMIT_ISSUE_TOKEN: "3/10s", RATE_LIMIT_CHARGE: "off" });
    expect(d.rateLimits.enabled).toBe(false);
    expect(d.rateLimits.issueToken).toEqual({ points: 3, durationMs: 10_000 });
    expect(d.rateLimits.charge).toBeUndefined();
    expect(loadConfig({ RATE_LIMITS: "yes" }).rateLimits.enabled).toBe(true);
  });

  const bad = ["10", "10/", "/1m", "ten/1m", "10/1x", "10 / 1m", "0/1m", "1000001/1s", "10/0s", "10/500ms", "10/1500ms", "-1/1m", "OFF", "none"];

  test.each(bad)("parseRateLimit(%p) is refused", (text) => {
    expect(() => parseRateLimit(text)).toThrow();
  });

  test.each(
    [
      "RATE_LIMIT_UNAUTHENTICATED",
      "RATE_LIMIT_ISSUE_TOKEN",
      "RATE_LIMIT_ISSUE_TOKEN_ADDRESS",
      "RATE_LIMIT_HOLD_SEAT",
      "RATE_LIMIT_HOLD_SEAT_ADDRESS",
      "RATE_LIMIT_CHARGE",
      "RATE_LIMIT_CHARGE_ADDRESS",
    ].flatMap((name) => bad.map((value) => [name, value])),
  )("%s=%p is refused, naming the variable", (name, value) => {
    expect(configError({ [name]: value })).toMatch(naming(name));
  });

  test("RATE_LIMITS accepts only on/off-like values", () => {
    expect(configError({ RATE_LIMITS: "sometimes" })).toMatch(naming("RATE_LIMITS"));
  });
});

describe("documentation", () => {
  // The schema's keys, as written in src/config.ts (the schema itself is private).
  const variables = [...readFileSync(join(root, "src/config.ts"), "utf8").matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
  const example = Object.fromEntries(
    readFileSync(join(root, ".env.example"), "utf8")
      .split("\n")
      .map((line) => /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );

  test("README's table and .env.example name every variable, and nothing else", () => {
    expect(variables.length).toBeGreaterThan(15);
    // The server's variables are the table of the Configuration section (the page's own server has its own).
    const readme = readFileSync(join(root, "README.md"), "utf8")
      .split(/^## Configuration$/m)[1]
      .split(/^## /m)[0];
    const table = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(table.sort()).toEqual([...variables].sort());
    expect(Object.keys(example).sort()).toEqual([...variables].sort());
  });

  test(".env.example, used as is, gives the defaults", () => {
    expect(loadConfig(example)).toEqual(loadConfig({}));
  });
});
