/**
 * The real server in AUTH_MODE=jwt, trusting a test identity provider of its
 * own: a fresh database with the demo catalog, the shared Redis under a key
 * prefix of its own, the queue's admission loop not started (tests tick it).
 */
import { randomBytes } from "node:crypto";
import { createTestDatabase, startTestServer, testRedisUrl, type TestDatabase, type TestServer } from "../harness";
import { createIssuer, type TestIssuer } from "./jwt-fixtures";

export interface JwtServer {
  idp: TestIssuer;
  server: TestServer;
  /** Stops the server, drops its database and closes the identity provider. */
  stop(): Promise<void>;
}

/** `name` starts the queue's Redis key prefix, so a suite's keys are recognisable. */
export async function startJwtServer(name: string): Promise<JwtServer> {
  const idp = await createIssuer();
  let db: TestDatabase | undefined;
  try {
    db = await createTestDatabase();
    const started = db;
    const server = await startTestServer(
      {
        DATABASE_URL: db.url,
        REDIS_URLS: testRedisUrl(),
        QUEUE_REDIS_PREFIX: `${name}:${randomBytes(4).toString("hex")}:`,
        SEED_DEMO_CATALOG: "true",
        AUTH_MODE: "jwt",
        AUTH_JWKS: idp.jwksPath,
        AUTH_ISSUER: idp.issuer,
        AUTH_AUDIENCE: idp.audience,
      },
      { startQueue: false },
    );
    return {
      idp,
      server,
      async stop() {
        await server.stop();
        await started.drop();
        await idp.close();
      },
    };
  } catch (err) {
    await db?.drop();
    await idp.close();
    throw err;
  }
}
