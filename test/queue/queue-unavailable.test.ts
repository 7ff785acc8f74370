/** Redis going away must give clients a quick, retryable answer, never INTERNAL or a hang. */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createTestDatabase, startRedis, startTestServer } from "../harness";

test("with Redis down the queue and the gate answer UNAVAILABLE fast, and the server keeps serving", async () => {
  const db = await createTestDatabase();
  const redis = await startRedis();
  const s = await startTestServer({ DATABASE_URL: db.url, REDIS_URLS: redis.url, SEED_DEMO_CATALOG: "true" });
  try {
    const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" });
    const queue = createClient(QueueService, transport);
    const concerts = createClient(ConcertService, transport);
    const { ticket } = await queue.issueToken({ userId: "before-outage" });

    await redis.stop();
    for (const call of [
      () => queue.issueToken({ userId: "during-outage" }),
      () => queue.getQueueStatus({ token: ticket!.token }),
      () => concerts.listAvailableDates({ concertId: "iu-golden-hour-2027" }, { headers: { "x-queue-token": ticket!.token } }),
    ]) {
      const started = Date.now();
      const err = await call().then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("QUEUE_UNAVAILABLE");
      expect(Date.now() - started).toBeLessThan(3000);
    }
    // What does not need Redis still works.
    expect((await concerts.listConcerts({})).concerts.length).toBe(4);
  } finally {
    await s.stop();
    await db.drop();
  }
});
