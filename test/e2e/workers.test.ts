/**
 * WORKERS=2: one port served by two processes (node:cluster), against the
 * shared PostgreSQL and Redis, started as the README says and stopped with
 * SIGTERM to the top process, as a process manager does.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { ConfigError, loadConfig } from "../../src/config";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { createTestDatabase, freePort, testRedisUrl, type TestDatabase } from "../harness";
import { descendants, refusesConnections, startProcess, stillRunning, stopProcess, type Started } from "./drain-process";
import { grpc, unary } from "./grpc-js";

jest.setTimeout(240_000);

const SERVER = ["node", "--import", "tsx", "src/main.ts"];
const LIST_CONCERTS = "/boxoffice.concert.v1.ConcertService/ListConcerts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const running: Started[] = [];
afterEach(() => {
  for (const p of running.splice(0)) {
    for (const d of descendants(p.child.pid!)) process.kill(d.pid, "SIGKILL");
    if (p.child.exitCode === null) p.child.kill("SIGKILL");
  }
});

/** Live server processes below the primary. */
const servers = (p: Started) =>
  stillRunning(descendants(p.child.pid!))
    .filter((d) => d.cmdline.includes("src/main.ts"))
    .map((d) => d.pid);

/** The environment of a WORKERS=2 server on this suite's PostgreSQL and Redis, with its own queue keys. */
function twoWorkers(extra: Record<string, string>): Record<string, string> {
  return {
    WORKERS: "2",
    DATABASE_URL: db.url,
    REDIS_URLS: testRedisUrl(),
    QUEUE_REDIS_PREFIX: `workers-${randomBytes(4).toString("hex")}:`,
    AUTH_MODE: "none",
    RATE_LIMITS: "off",
    SHUTDOWN_GRACE: "2s",
    ...extra,
  };
}

async function until(what: string, ok: () => boolean, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("two workers share the port: connections land on both pids, /metrics sums them, SIGTERM drains both and exits 0", async () => {
  const metricsPort = await freePort();
  const p = await startProcess(SERVER, twoWorkers({ SEED_DEMO_CATALOG: "true", METRICS_PORT: String(metricsPort) }));
  running.push(p);
  await until("every worker serving", () => p.logs.some((l) => l.msg === "every worker serving"));

  const started = p.logs.filter((l) => l.msg === "worker started").map((l) => l.pid);
  expect(started).toHaveLength(2);
  expect(new Set(started).size).toBe(2);
  const serving = p.logs.filter((l) => l.msg === "serving gRPC, gRPC-Web and Connect").map((l) => l.pid);
  expect(serving.sort()).toEqual([...started].sort());
  // The server processes under the primary are the two workers (tsx's esbuild helpers aside).
  expect(servers(p).sort()).toEqual([...started].sort());

  // A client of its own per connection: grpc-js otherwise shares one connection between clients of one address.
  const clients = Array.from(
    { length: 6 },
    () => new grpc.Client(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  try {
    for (const c of clients) expect((await unary(c, ConcertService.method.listConcerts, {})).message.concerts).toHaveLength(4);
  } finally {
    for (const c of clients) c.close();
  }
  await until("six rpc lines", () => p.logs.filter((l) => l.msg === "rpc" && l.procedure === LIST_CONCERTS).length === 6);
  const answeredBy = new Set(p.logs.filter((l) => l.msg === "rpc" && l.procedure === LIST_CONCERTS).map((l) => l.pid));
  expect([...answeredBy].sort()).toEqual([...started].sort());

  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(scrape.status).toBe(200);
  const text = await scrape.text();
  const line = text.split("\n").find((l) => l.startsWith("rpc_calls_total{") && l.includes(`procedure="${LIST_CONCERTS}"`) && l.includes(`code="OK"`));
  expect(line?.split(" ").pop()).toBe("6");

  const stopped = await stopProcess(p);
  expect(stopped).toMatchObject({ code: 0, signal: null });
  expect(stillRunning(descendants(p.child.pid!))).toEqual([]);
  expect(await refusesConnections(p.port)).toBe(true);
  // Worker lines carry `worker`; the primary's about a worker name it in `worker` too, but its own drain lines do not.
  const msgs = (pid: unknown) => p.logs.filter((l) => l.pid === pid && l.msg !== "worker started" && l.msg !== "worker stopped").map((l) => l.msg);
  for (const pid of started) expect(msgs(pid)).toEqual(expect.arrayContaining(["draining", "stopped"]));
  expect(p.logs.filter((l) => l.msg === "draining" && l.pid === undefined)).toMatchObject([{ signal: "SIGTERM", workers: 2 }]);
  expect(p.logs.filter((l) => l.msg === "worker stopped").map((l) => [l.pid, l.code])).toEqual(expect.arrayContaining(started.map((pid) => [pid, 0])));
  // Lines of the primary and the workers share one pipe: their order is not guaranteed, and stdout may still be delivering when the exit is reported.
  await until("the primary's stopped line", () => p.logs.some((l) => l.msg === "stopped" && l.pid === undefined), 5_000);
  expect(p.logs.find((l) => l.msg === "stopped" && l.pid === undefined)).toMatchObject({ failed: false });
});

test("a worker that dies is logged and replaced; the replacement serves", async () => {
  const p = await startProcess(SERVER, twoWorkers({ METRICS_PORT: "off" }));
  running.push(p);
  await until("every worker serving", () => p.logs.some((l) => l.msg === "every worker serving"));
  const [victim] = p.logs.filter((l) => l.msg === "worker started").map((l) => l.pid as number);
  process.kill(victim, "SIGKILL");
  await until("a third worker serving", () => p.logs.filter((l) => l.msg === "serving gRPC, gRPC-Web and Connect").length === 3).catch((err) => {
    throw new Error(`${err}\n${p.logs.map((l) => JSON.stringify(l)).join("\n")}\n${p.stderr()}`);
  });
  expect(p.logs.find((l) => l.msg === "worker died; starting another")).toMatchObject({ pid: victim, signal: "SIGKILL" });
  expect(servers(p)).not.toContain(victim);
  expect(servers(p)).toHaveLength(2);

  const stopped = await stopProcess(p);
  // The drain itself was clean.
  expect(stopped).toMatchObject({ code: 0, signal: null });
});

test("WORKERS=2 on the embedded default is refused at start with exit code 2", async () => {
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = execFile(
      SERVER[0],
      SERVER.slice(1),
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, WORKERS: "2", PORT: "0" }, timeout: 30_000 },
      (_err, _out, stderr) => resolve({ code: child.exitCode, stderr }),
    );
  });
  expect(result.code).toBe(2);
  expect(result.stderr).toContain("WORKERS: 2 needs DATABASE_URL (PostgreSQL) and REDIS_URLS or REDIS_SENTINELS");
});

describe("WORKERS in the configuration", () => {
  const shared = { DATABASE_URL: "postgresql://u@db/boxoffice", REDIS_URLS: "redis://r:6379", AUTH_MODE: "none" };
  const refusal = (env: Record<string, string>, options?: { serving?: boolean }) => {
    try {
      loadConfig(env, options);
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
  };

  test("a count, or auto for one per core; 1 by default", () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ ...shared, WORKERS: "3" }).workers).toBe(3);
    expect(loadConfig({ ...shared, WORKERS: "auto" }).workers).toBe(availableParallelism());
    for (const bad of ["0", "-1", "two", "1.5", "257"]) expect(refusal({ ...shared, WORKERS: bad })).toContain("WORKERS: must be auto or a whole number 1-256");
  });

  test("more than one needs PostgreSQL and Redis; a one-shot command does not care", () => {
    const needs = "needs DATABASE_URL (PostgreSQL) and REDIS_URLS or REDIS_SENTINELS";
    expect(refusal({ WORKERS: "2" })).toContain(`WORKERS: 2 ${needs}`);
    expect(refusal({ WORKERS: "auto" })).toContain(`WORKERS: auto ${needs}`);
    expect(refusal({ ...shared, REDIS_URLS: "", WORKERS: "2" })).toContain(needs);
    expect(refusal({ REDIS_URLS: "redis://r:6379", WORKERS: "2" })).toContain(needs);
    expect(loadConfig({ ...shared, REDIS_URLS: "", REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "queue", WORKERS: "2" }).workers).toBe(2);
    expect(loadConfig({ WORKERS: "1" }).workers).toBe(1);
    expect(loadConfig({ DATABASE_URL: shared.DATABASE_URL, WORKERS: "4" }, { serving: false }).workers).toBe(4);
  });

  test("CATALOG_CACHE_TTL: 1s by default, 0 turns the cache off", () => {
    expect(loadConfig({}).catalogCacheTtlMs).toBe(1000);
    expect(loadConfig({ CATALOG_CACHE_TTL: "0" }).catalogCacheTtlMs).toBe(0);
    expect(loadConfig({ CATALOG_CACHE_TTL: "250ms" }).catalogCacheTtlMs).toBe(250);
    expect(refusal({ CATALOG_CACHE_TTL: "soon" })).toContain("CATALOG_CACHE_TTL");
  });
});
