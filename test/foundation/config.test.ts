import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, parseDuration } from "../../src/config";

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
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const table = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(table.sort()).toEqual([...variables].sort());
    expect(Object.keys(example).sort()).toEqual([...variables].sort());
  });

  test(".env.example, used as is, gives the defaults", () => {
    expect(loadConfig(example)).toEqual(loadConfig({}));
  });
});
