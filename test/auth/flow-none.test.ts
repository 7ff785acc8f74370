/**
 * AUTH_MODE=none keeps the demo's behaviour: nobody is verified and the user
 * id in a request is trusted (and required). The booking flow passes over gRPC
 * and Connect; the jwt-mode flow is in attacks.test.ts.
 */
import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";
import { rejection } from "../reservation/support";
import { bookingFlow, clients, transportsFor } from "./flow";

let db: TestDatabase;
let s: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer(
    {
      DATABASE_URL: db.url,
      REDIS_URLS: testRedisUrl(),
      QUEUE_REDIS_PREFIX: `none:${randomBytes(4).toString("hex")}:`,
      SEED_DEMO_CATALOG: "true",
      AUTH_MODE: "none",
    },
    { startQueue: false },
  );
});
afterAll(async () => {
  await s?.stop();
  await db?.drop();
});

describe.each(["gRPC", "Connect (HTTP/1.1)"])("AUTH_MODE=none over %s", (name) => {
  test("the booking flow, each request naming its user", async () => {
    const transport = transportsFor(s.baseUrl)[name]();
    const userId = `none-${name.startsWith("g") ? "grpc" : "connect"}`;
    await bookingFlow(s, transport, transport, userId, userId);
  });

  test("a request that names no user is INVALID_ARGUMENT USER_ID_REQUIRED and does nothing", async () => {
    const c = clients(transportsFor(s.baseUrl)[name]());
    expect(await rejection(c.queue.issueToken({}))).toEqual({ code: Code.InvalidArgument, reason: "USER_ID_REQUIRED" });
    expect(await rejection(c.wallet.getBalance({}))).toEqual({ code: Code.InvalidArgument, reason: "USER_ID_REQUIRED" });
    const round = await s.deps.queue.tick();
    expect(round!.waiting + round!.active).toBe(0);
  });
});
