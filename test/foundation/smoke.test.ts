import { createTestDatabase, startTestServer, testRedisUrl } from "../harness";

test("server starts on a fresh PostgreSQL with Redis", async () => {
  const db = await createTestDatabase();
  const s = await startTestServer({ DATABASE_URL: db.url, REDIS_URLS: testRedisUrl(), SEED_DEMO_CATALOG: "true" });
  try {
    const res = await fetch(`${s.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
  } finally {
    await s.stop();
    await db.drop();
  }
});
