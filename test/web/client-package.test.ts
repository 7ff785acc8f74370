/**
 * @boxoffice/client (packages/client) without a browser: it builds for the
 * browser with nothing server-only inside (its size printed), its generated
 * code matches proto/, it knows every documented reason, and its helpers read
 * real refusals from the real server over Connect and gRPC-Web.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ALL_REASONS, Code, createBoxofficeClient, QueueStatus, REASONS, refusalOf, waitingTicket, type Protocol } from "../../packages/client/src";
import { bundleClient } from "../../packages/client/scripts/build";
import { ALL_REASONS as SERVER_REASONS } from "../../src/platform/reasons";
import { explain, WORDS } from "../../web/src/reasons";
import { createTestDatabase, freePort, startTestServer, type TestDatabase, type TestServer } from "../harness";

const ROOT = join(__dirname, "../..");
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

describe("the browser bundle", () => {
  test("builds without protovalidate or any server-only package; its size is printed", async () => {
    const client = await bundleClient({ write: false });
    const naive = await bundleClient({ write: false, withProtovalidate: true });
    process.stdout.write(
      `\n@boxoffice/client browser bundle: ${kb(client.bytes)} minified, ${kb(client.gzipBytes)} gzip` +
        ` (with gen/'s @bufbuild/protovalidate import: ${kb(naive.bytes)} minified, ${kb(naive.gzipBytes)} gzip)\n`,
    );
    expect(Object.keys(client.packages).sort()).toEqual(["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"]);
    expect(client.sources.every((s) => s.startsWith("src/"))).toBe(true);
    expect(client.sources).toContain("src/validate-stub/buf/validate/validate_pb.ts");
    expect(naive.packages["@bufbuild/protovalidate"]).toBeGreaterThan(50_000);
    expect(client.bytes).toBeLessThan(naive.bytes - 50_000);
    // A budget, so growth is a decision: today ~125 KB minified, ~36 KB gzip.
    expect(client.gzipBytes).toBeLessThan(45 * 1024);
  });

  test("`npm run build -w @boxoffice/client` writes dist/boxoffice-client.js and prints its size", () => {
    const r = spawnSync("npm", ["run", "--silent", "build", "-w", "@boxoffice/client"], { cwd: ROOT, encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^dist\/boxoffice-client\.js: [\d.]+ KB minified, [\d.]+ KB gzip$/m);
    expect(statSync(join(ROOT, "packages/client/dist/boxoffice-client.js")).size).toBeGreaterThan(50_000);
  });

  test("its generated code is what packages/client/buf.gen.yaml makes of proto/ today", () => {
    const out = mkdtempSync(join(tmpdir(), "boxoffice-client-gen-"));
    try {
      const r = spawnSync(join(ROOT, "node_modules/.bin/buf"), ["generate", "--template", "packages/client/buf.gen.yaml", "--output", out], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` },
      });
      expect(r.stderr).toBe("");
      const committed = join(ROOT, "packages/client/src/gen");
      const fresh = join(out, "packages/client/src/gen");
      const stale = [...new Set([...files(committed), ...files(fresh)])].filter((f) => read(join(committed, f)) !== read(join(fresh, f)));
      if (stale.length) throw new Error(`packages/client/src/gen is stale (${stale.join(", ")}): run npm run generate -w @boxoffice/client`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

function files(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(dir, join(e.parentPath, e.name)));
  } catch {
    return [];
  }
}
const read = (f: string) => {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return undefined;
  }
};

test("the client knows every reason the README documents, and the page has words for each", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Errors"), readme.indexOf("\n## ", readme.indexOf("\n## Errors") + 1));
  // The table also names settings (`DB_LOCK_TIMEOUT`): those are the variables src/config.ts reads.
  const settings = new Set([...readFileSync(join(ROOT, "src/config.ts"), "utf8").matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));
  const documented = [...section.matchAll(/^\|.*$/gm)]
    .flatMap((row) => [...row[0].matchAll(/`([A-Z][A-Z0-9_]{3,})`/g)].map((m) => m[1]))
    .filter((name) => !settings.has(name));
  expect(documented.length).toBeGreaterThan(30);
  expect(documented.filter((r) => !(ALL_REASONS as readonly string[]).includes(r))).toEqual([]);
  for (const r of ALL_REASONS) expect(WORDS[r]).toBeDefined();
});

test("the client's reasons are its generated copy of the proto enum's, each in one group of REASONS", () => {
  expect(ALL_REASONS).toEqual(SERVER_REASONS);
  const grouped = Object.values(REASONS).flat();
  expect([...grouped].sort()).toEqual([...ALL_REASONS].sort());
});

describe.each<Protocol>(["connect", "grpc-web"])("the helpers against the server, over %s", (protocol) => {
  let db: TestDatabase;
  let s: TestServer;
  beforeAll(async () => {
    db = await createTestDatabase();
    // Nobody is admitted: every token stays WAITING.
    s = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true" }, { startQueue: false });
  });
  afterAll(async () => {
    await s?.stop();
    await db?.drop();
  });

  test("a gated call with a waiting token: QUEUE_TOKEN_WAITING, its position, and the ticket detail", async () => {
    const bo = createBoxofficeClient({ baseUrl: s.baseUrl, protocol });
    await bo.queue.issueToken({ userId: "ahead" });
    const { ticket } = await bo.queue.issueToken({ userId: "helper" });
    expect(ticket?.status).toBe(QueueStatus.WAITING);
    bo.queueToken = ticket!.token;
    const err = await bo.concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }).catch((e: unknown) => e);
    const r = refusalOf(err);
    expect(r).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "QUEUE_TOKEN_WAITING",
      metadata: { position: "1" },
      retryable: false,
      unreachable: false,
    });
    expect(waitingTicket(err)).toMatchObject({ token: ticket!.token, userId: "helper", status: QueueStatus.WAITING, position: 1n });
    expect(r.requestId).toMatch(/.+/);
    expect(explain(r).title).toBe("You're still in line.");
  });

  test("without a queue token: QUEUE_TOKEN_MISSING; a refusal without ErrorInfo has no reason", async () => {
    const bo = createBoxofficeClient({ baseUrl: s.baseUrl, protocol });
    const missing = refusalOf(await bo.concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }).catch((e: unknown) => e));
    expect(missing).toMatchObject({ code: Code.FailedPrecondition, reason: "QUEUE_TOKEN_MISSING" });
    // protovalidate's violations come as INVALID_ARGUMENT without an ErrorInfo (the client does not decode them: no validate descriptors).
    const invalid = refusalOf(await bo.queue.getQueueStatus({ token: "short" }).catch((e: unknown) => e));
    expect(invalid).toMatchObject({ code: Code.InvalidArgument, reason: undefined });
    expect(explain(invalid)).toMatchObject({ reason: "INVALID_ARGUMENT", title: "Some details weren't accepted." });
  });

  test("a server that is not there: unreachable, and the page's words say so", async () => {
    const bo = createBoxofficeClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, protocol });
    const r = refusalOf(await bo.concerts.listConcerts({}).catch((e: unknown) => e));
    expect(r).toMatchObject({ code: Code.Unknown, reason: undefined, unreachable: true });
    expect(explain(r).reason).toBe("UNREACHABLE");
  });
});
