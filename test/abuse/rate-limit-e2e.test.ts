/**
 * Call budgets through the real server (real PostgreSQL and the shared Redis),
 * as a client sees them over gRPC and over Connect JSON.
 */
import { randomBytes } from "node:crypto";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { errorReason } from "../../src/platform/errors";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unique = () => randomBytes(4).toString("hex");
/** A client address of its own per test (the server trusts one proxy hop): the Redis budgets are shared with other runs. */
const address = () => `2001:db8::${unique().slice(0, 4)}:${unique().slice(0, 4)}`;

let db: TestDatabase;
let s: TestServer;
let queue: ReturnType<typeof createClient<typeof QueueService>>;
let concerts: ReturnType<typeof createClient<typeof ConcertService>>;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({
    DATABASE_URL: db.url,
    REDIS_URLS: testRedisUrl(),
    QUEUE_REDIS_PREFIX: `e2e-rl:${unique()}:`,
    TRUST_PROXY_HOPS: "1",
    RATE_LIMITS: "on",
    RATE_LIMIT_ISSUE_TOKEN_ADDRESS: "3/1s",
    RATE_LIMIT_ISSUE_TOKEN: "2/1s",
    RATE_LIMIT_UNAUTHENTICATED: "5/1s",
  });
  const transport = createGrpcTransport({ baseUrl: s.baseUrl });
  queue = createClient(QueueService, transport);
  concerts = createClient(ConcertService, transport);
});

afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

const from = (addr: string) => ({ headers: { "x-forwarded-for": addr } });

async function refusalOf(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError refusal, got ${String(err)}`);
  return err;
}

test("IssueToken per address: the 4th call within a second is RESOURCE_EXHAUSTED with RetryInfo; after the window calls pass again", async () => {
  const addr = address();
  for (let i = 0; i < 3; i++) await queue.issueToken({ userId: `u-${unique()}` }, from(addr));
  // The budget lives in Redis, shared by every instance of the server.
  expect(Number(await s.deps.redis[0].get(`boxoffice:rl:issueTokenAddress:${addr}`))).toBe(3);

  const err = await refusalOf(queue.issueToken({ userId: `u-${unique()}` }, from(addr)));
  expect(err.code).toBe(Code.ResourceExhausted);
  expect(errorReason(err)).toBe("RATE_LIMITED");
  expect(err.rawMessage).toContain("IssueToken calls from this address (3 per 1s)");
  const info = err.findDetails(ErrorInfoSchema)[0];
  expect(info.metadata.limit).toBe("issueTokenAddress");
  const retryAfterMs = Number(info.metadata.retry_after_ms);
  expect(retryAfterMs).toBeGreaterThan(0);
  expect(retryAfterMs).toBeLessThanOrEqual(1000);
  expect(durationMs(err.findDetails(RetryInfoSchema)[0].retryDelay!)).toBe(retryAfterMs);

  // Another address is not affected.
  await queue.issueToken({ userId: `u-${unique()}` }, from(address()));

  await sleep(retryAfterMs + 50);
  const res = await queue.issueToken({ userId: `u-${unique()}` }, from(addr));
  expect(res.ticket?.token).toBeTruthy();

  const refused = await s.deps.metrics.registry.getSingleMetric("rate_limited_total")!.get();
  expect(refused.values.find((v) => v.labels.limit === "issueTokenAddress")?.value).toBeGreaterThanOrEqual(1);
});

test("IssueToken per user: the same user from fresh addresses is refused past its own budget", async () => {
  const user = `u-${unique()}`;
  await queue.issueToken({ userId: user }, from(address()));
  await queue.issueToken({ userId: user }, from(address()));
  const err = await refusalOf(queue.issueToken({ userId: user }, from(address())));
  expect(err.code).toBe(Code.ResourceExhausted);
  expect(err.findDetails(ErrorInfoSchema)[0].metadata.limit).toBe("issueToken");
});

test("RATE_LIMIT_UNAUTHENTICATED: with AUTH_MODE=none every call counts against its address, public RPCs too", async () => {
  const addr = address();
  for (let i = 0; i < 5; i++) await concerts.listConcerts({}, from(addr));
  const err = await refusalOf(concerts.listConcerts({}, from(addr)));
  expect(err.code).toBe(Code.ResourceExhausted);
  expect(errorReason(err)).toBe("RATE_LIMITED");
  expect(err.findDetails(ErrorInfoSchema)[0].metadata.limit).toBe("unauthenticated");
  expect(err.findDetails(RetryInfoSchema)).toHaveLength(1);

  // A browser speaking Connect JSON from the same address sees HTTP 429.
  const res = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", "x-forwarded-for": addr },
    body: "{}",
  });
  expect(res.status).toBe(429);
  expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
});
