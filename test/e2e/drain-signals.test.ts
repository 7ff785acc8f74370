/**
 * The commands the README gives, run as real process trees and stopped the way
 * a process manager, `docker stop` or Kubernetes does: SIGTERM (or SIGINT) to
 * the top process only. The server must get the signal, drain (calls already
 * running finish), log "stopped", close its port, exit 0, and leave no process
 * behind. Also: the production build loads and runs on plain `node`.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { Client } from "pg";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { createIssuer, type TestIssuer } from "../auth/jwt-fixtures";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "../harness";
import { descendants, refusesConnections, startProcess, stillRunning, stopProcess, type Started } from "./drain-process";
import { grpc, grpcJsClient, unary } from "./grpc-js";

jest.setTimeout(180_000);

let db: TestDatabase;
const running: Started[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterEach(() => {
  for (const p of running.splice(0)) {
    for (const d of descendants(p.child.pid!)) process.kill(d.pid, "SIGKILL");
    if (p.child.exitCode === null) p.child.kill("SIGKILL");
  }
});

afterAll(async () => {
  await db?.drop();
});

/** PostgreSQL and Redis from the test services, so the process starts in a second or two. */
function serverEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    REDIS_URLS: testRedisUrl(),
    QUEUE_REDIS_PREFIX: `drain:${randomBytes(4).toString("hex")}:`,
    SEED_DEMO_CATALOG: "true",
    CATALOG_CACHE_TTL: "0", // every ListConcerts must reach the table the test locks
    AUTH_MODE: "none",
    SHUTDOWN_GRACE: "10s",
    ...extra,
  };
}

async function start(argv: string[], env: Record<string, string>, ownGroup = false): Promise<Started> {
  const p = await startProcess(argv, env, { ownGroup });
  running.push(p);
  return p;
}

/**
 * Stops `p` with `signal` and checks the whole story: it drained once, said
 * "stopped", exited 0, the port is closed and every process of the tree is gone.
 */
async function expectDrainedAndGone(p: Started, signal: NodeJS.Signals, opts: { group?: boolean } = {}) {
  const tree = descendants(p.child.pid!);
  const stopped = await stopProcess(p, signal, opts);
  expect({ ...stopped, ms: undefined, stderr: p.stderr() }).toEqual({ code: 0, signal: null, ms: undefined, stderr: expect.any(String) });
  expect(stopped.ms).toBeLessThan(10_000);
  const msgs = p.logs.map((l) => l.msg);
  expect(msgs.filter((m) => m === "draining")).toHaveLength(1);
  expect(p.logs.find((l) => l.msg === "draining")).toMatchObject({ signal });
  expect(msgs).toContain("stopped");
  expect(await refusesConnections(p.port)).toBe(true);
  // The tree exits with its top process; give an orphan a moment to show itself.
  await new Promise((r) => setTimeout(r, 200));
  expect(stillRunning(tree)).toEqual([]);
}

async function listConcerts(port: number) {
  const client = grpcJsClient(port);
  try {
    return (await unary(client, ConcertService.method.listConcerts, {})).message.concerts.length;
  } finally {
    client.close();
  }
}

describe("npm start (the newcomer's command: TypeScript through tsx)", () => {
  test("SIGTERM to npm reaches the server, which drains and exits 0; npm exits 0; nothing is left", async () => {
    const p = await start(["npm", "start"], serverEnv());
    // npm runs the script with `exec`: the shell is replaced by the server,
    // so npm's own signal forwarding reaches it (no sh, no tsx launcher in between).
    const tree = descendants(p.child.pid!);
    // tsx's esbuild service is the server's own child; what matters is that nothing stands between npm and the server.
    expect(tree.map((d) => d.cmdline).filter((c) => !/\/esbuild --service/.test(c))).toEqual([expect.stringMatching(/^node --import tsx src\/main\.ts$/)]);
    expect(await listConcerts(p.port)).toBe(4);
    await expectDrainedAndGone(p, "SIGTERM");
  });

  test("Ctrl-C in a terminal (SIGINT to the whole process group, so the server hears it twice): one drain, exit 0", async () => {
    const p = await start(["npm", "start"], serverEnv(), true);
    expect(await listConcerts(p.port)).toBe(4);
    await expectDrainedAndGone(p, "SIGINT", { group: true });
  });
});

describe("the production build: npm run build, then plain node", () => {
  let idp: TestIssuer;

  beforeAll(async () => {
    const build = await promisify(execFile)("npm", ["run", "build"], { timeout: 150_000 }).catch((err) => err);
    expect({ code: build.code ?? 0, stderr: build.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(existsSync("dist/src/main.js")).toBe(true);
    idp = await createIssuer();
  });

  afterAll(async () => {
    await idp?.close();
  });

  test("node dist/src/main.js: jose (ES modules), redlock, migrations and the generated code load; a JWT verifies; SIGTERM drains a running call and exits 0", async () => {
    const p = await start(
      ["node", "--enable-source-maps", "dist/src/main.js"],
      serverEnv({ AUTH_MODE: "jwt", AUTH_JWKS: idp.jwksPath, AUTH_ISSUER: idp.issuer, AUTH_AUDIENCE: idp.audience }),
    );
    expect(p.logs.find((l) => l.msg === "serving gRPC, gRPC-Web and Connect")).toMatchObject({ database: "postgresql", queueAndLocks: "redis x1" });
    expect(p.stderr()).toBe("");

    const client = grpcJsClient(p.port);
    const blocker = new Client({ connectionString: db.url });
    await blocker.connect();
    try {
      const auth = new grpc.Metadata();
      auth.set("authorization", `Bearer ${await idp.sign({ sub: "drain-user" })}`);
      const balance = await unary(client, WalletService.method.getBalance, {}, auth);
      expect(balance.message.userId).toBe("drain-user");

      // A call running when the signal arrives finishes before the process exits.
      await blocker.query("begin");
      await blocker.query("lock table concert in access exclusive mode");
      const call = unary(client, ConcertService.method.listConcerts, {});
      await untilWaiting(blocker, 1);
      const tree = descendants(p.child.pid!);
      p.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      expect(p.child.exitCode).toBeNull();
      expect(await refusesConnections(p.port)).toBe(true);
      await blocker.query("commit");
      expect((await call).message.concerts).toHaveLength(4);
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(p.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["draining", "stopped"]));
      expect(stillRunning(tree)).toEqual([]);
    } finally {
      client.close();
      await blocker.end();
    }
  });

  test("npm run start:prod: SIGTERM to npm drains the server; exit 0; nothing is left", async () => {
    const p = await start(["npm", "run", "start:prod"], serverEnv());
    expect(descendants(p.child.pid!).map((d) => d.cmdline)).toEqual([expect.stringMatching(/^node .*dist\/src\/main\.js$/)]);
    expect(await listConcerts(p.port)).toBe(4);
    await expectDrainedAndGone(p, "SIGTERM");
  });

  test("SIGINT to node dist/src/main.js drains too", async () => {
    const p = await start(["node", "dist/src/main.js"], serverEnv());
    expect(await listConcerts(p.port)).toBe(4);
    await expectDrainedAndGone(p, "SIGINT");
  });
});

async function untilWaiting(c: Client, calls: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { rows } = await c.query(
      "select count(*)::int as n from pg_locks l join pg_database d on d.oid = l.database where not l.granted and d.datname = current_database()",
    );
    if (rows[0].n >= calls) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`fewer than ${calls} calls ever waited for the lock`);
}
