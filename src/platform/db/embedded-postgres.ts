import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** PGlite's port of PostgreSQL behind a Unix socket, so the regular `pg` driver
 * (and so MikroORM) talks to it like any server. One session serves every
 * connection: the ORM pool must hold a single connection. */
export interface EmbeddedPostgres {
  /** Directory holding the socket, to pass as the `pg` host. */
  socketDir: string;
  port: number;
  stop(): Promise<void>;
}

export const IN_MEMORY = "memory://";

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  if (dataDir !== IN_MEMORY) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir === IN_MEMORY ? undefined : dataDir);
  const socketDir = mkdtempSync(join(tmpdir(), "boxoffice-pglite-"));
  const port = 5432;
  const server = new PGLiteSocketServer({ db, path: join(socketDir, `.s.PGSQL.${port}`), maxConnections: 1 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    rmSync(socketDir, { recursive: true, force: true });
    throw err;
  }
  return {
    socketDir,
    port,
    async stop() {
      await server.stop();
      await db.close();
      rmSync(socketDir, { recursive: true, force: true });
    },
  };
}
