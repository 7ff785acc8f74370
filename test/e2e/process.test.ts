/**
 * The real process as `npm start` runs it: no DATABASE_URL, so the embedded
 * PGlite; stopped with SIGTERM to npm, as an orchestrator would.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb";
import { descendants, startProcess as start, stopProcess, type Started } from "./drain-process";
import { collect, grpc, grpcJsClient, serverStream, unary } from "./grpc-js";

/** `npm start`, with a clean environment plus `env`. PGlite runs initdb in WebAssembly on a new data directory: seconds of CPU. */
const startProcess = (env: Record<string, string>): Promise<Started> => start(["npm", "start"], env, { timeoutMs: 60_000 });

/**
 * One statement against a PGlite data directory, from a separate Node process:
 * PGlite loads its WebAssembly with a dynamic import, which Jest's VM refuses.
 */
async function pgliteQuery(dataDir: string, sql: string): Promise<unknown[]> {
  const script = `
    const { PGlite } = require("@electric-sql/pglite");
    (async () => {
      const db = await PGlite.create(process.argv[1]);
      const res = await db.query(process.argv[2]);
      await db.close();
      process.stdout.write(JSON.stringify(res.rows));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await promisify(execFile)(process.execPath, ["-e", script, dataDir, sql], { timeout: 30_000 });
  return JSON.parse(stdout);
}

jest.setTimeout(150_000);

const running: Started[] = [];
afterEach(() => {
  for (const p of running.splice(0)) {
    for (const d of descendants(p.child.pid!)) process.kill(d.pid, "SIGKILL"); // npm's server, on a failed test
    if (p.child.exitCode === null) p.child.kill("SIGKILL");
  }
});

test("embedded default (PGLITE_DATA_DIR=memory://): serves the demo catalog and Health SERVING; SIGTERM drains and exits 0", async () => {
  const p = await startProcess({ PGLITE_DATA_DIR: "memory://" });
  running.push(p);
  const client = grpcJsClient(p.port);
  try {
    expect(p.logs.find((l) => l.msg === "serving gRPC, gRPC-Web and Connect")).toMatchObject({ database: "pglite", queueAndLocks: "in-process" });
    const health = await unary(client, Health.method.check, { service: "" });
    expect(health.message.status).toBe(Status.SERVING);
    const list = await unary(client, ConcertService.method.listConcerts, {});
    expect(list.message.concerts).toHaveLength(4);

    const watch = serverStream(client, Health.method.watch, { service: "" });
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => (first = r));
    const watched = collect(watch, () => first());
    await gotFirst;

    const stopped = await stopProcess(p);
    expect(stopped).toMatchObject({ code: 0, signal: null });
    expect(stopped.ms).toBeLessThan(5_000);
    const { status } = await watched;
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(p.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["draining", "stopped"]));
  } finally {
    client.close();
  }
});

test("a persisted PGlite data directory keeps its data across starts and is seeded once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-pglite-test-"));
  const dataDir = join(dir, "data");
  try {
    const first = await startProcess({ PGLITE_DATA_DIR: dataDir });
    running.push(first);
    expect(first.logs.find((l) => l.msg === "loaded the demo catalog")).toMatchObject({ concerts: 4 });
    expect((await stopProcess(first)).code).toBe(0);

    const second = await startProcess({ PGLITE_DATA_DIR: dataDir });
    running.push(second);
    const client = grpcJsClient(second.port);
    try {
      const list = await unary(client, ConcertService.method.listConcerts, {});
      expect(list.message.concerts).toHaveLength(4);
    } finally {
      client.close();
    }
    // A fresh database would need its migrations and the catalog again.
    const msgs = second.logs.map((l) => l.msg);
    expect(msgs).toContain("started embedded PostgreSQL (PGlite)");
    expect(msgs).not.toContain("applied migrations");
    expect(msgs).not.toContain("loaded the demo catalog");
    expect((await stopProcess(second)).code).toBe(0);

    const counts = await pgliteQuery(
      dataDir,
      `select (select count(*)::int from concert) as concerts, (select count(*)::int from concert_date) as dates, (select count(*)::int from seat) as seats`,
    );
    expect(counts[0]).toEqual({ concerts: 4, dates: 12, seats: 600 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
