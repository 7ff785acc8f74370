/**
 * `npm start` runs the server through tsx, which applies tsconfig `paths` at
 * run time. The redlock typing workaround once made tsx load a .d.ts instead
 * of the library, so no seat lock was ever taken. Take a real lock that way.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { testRedisUrl } from "../harness";

const ROOT = join(__dirname, "..", "..");

test("under tsx (as npm start runs), Redlock takes and refuses real locks", () => {
  const script = `
    import { createRedlockLocks } from "./src/platform/locks";
    import { connectRedis, closeRedis } from "./src/platform/redis";
    import { createLogger } from "./src/platform/logger";
    (async () => {
      const log = createLogger("silent");
      const clients = await connectRedis([process.env.URL!], log);
      const locks = createRedlockLocks(clients, log);
      const first = await locks.tryAcquire("probe:" + process.pid, 2000);
      const second = await locks.tryAcquire("probe:" + process.pid, 2000);
      console.log(JSON.stringify({ first: typeof first === "object" ? "lease" : first, second }));
      if (typeof first === "object") await first.release();
      await closeRedis(clients);
    })();
  `;
  const r = spawnSync(join(ROOT, "node_modules", ".bin", "tsx"), ["--eval", script], {
    cwd: ROOT,
    env: { ...process.env, URL: testRedisUrl() },
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout.trim())).toEqual({ first: "lease", second: "busy" });
});
