/**
 * The conformance kit (contract/) against the real server, as a child process
 * that knows only the URL and the protos: once on the embedded default
 * (`npm start` with PGlite in memory and the in-process queue) and once on
 * PostgreSQL + Redis, over gRPC, Connect and gRPC-Web each.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";
import { startProcess, stopProcess, type Started } from "../e2e/drain-process";

jest.setTimeout(300_000);

/** Admission within a round or two, so the kit's WAITING -> ACTIVE takes milliseconds. */
const FAST_QUEUE = { QUEUE_TICK: "50ms", QUEUE_ADMIT_PER_SECOND: "1000" };
const PROTOCOLS = ["grpc", "connect", "grpc-web"] as const;

async function runKit(baseUrl: string, protocol: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)("npx", ["tsx", "contract/main.ts", "--url", baseUrl, "--protocol", protocol, "--admission-timeout", "30000"], {
      timeout: 120_000,
    });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: `${e.stdout ?? ""}\n${e.stderr ?? ""}` };
  }
}

function expectPassed(run: { code: number; stdout: string }): void {
  const failures = run.stdout.split("\n").filter((l) => l.startsWith("FAIL"));
  expect(failures).toEqual([]);
  expect(run.code).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(run.stdout);
  expect(summary).not.toBeNull();
  expect(Number(summary![1])).toBeGreaterThan(60);
  expect(summary![2]).toBe("0");
}

describe("embedded default (PGlite in memory, in-process queue)", () => {
  let server: Started;
  beforeAll(async () => {
    server = await startProcess(["node", "--import", "tsx", "src/main.ts"], { PGLITE_DATA_DIR: "memory://", ...FAST_QUEUE }, { timeoutMs: 120_000 });
  }, 150_000);
  afterAll(async () => {
    if (server) await stopProcess(server);
  });

  test.each(PROTOCOLS)("the kit passes over %s", async (protocol) => {
    expectPassed(await runKit(`http://127.0.0.1:${server.port}`, protocol));
  });
});

describe("PostgreSQL + Redis", () => {
  let db: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({
      DATABASE_URL: db.url,
      REDIS_URLS: testRedisUrl(),
      QUEUE_REDIS_PREFIX: `${db.name}:queue:`,
      SEED_DEMO_CATALOG: "true",
      ...FAST_QUEUE,
    });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  test.each(PROTOCOLS)("the kit passes over %s", async (protocol) => {
    expectPassed(await runKit(server.baseUrl, protocol));
  });
});
