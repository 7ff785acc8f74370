import { spawn } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

export interface InvariantVerdict {
  ok: boolean;
  exitCode: number | null;
  /** What the checker printed (stdout and stderr). */
  output: string;
}

/** Runs `src/cli/check-invariants.ts` (npm run check:invariants) against `databaseUrl` as its own process. */
export function runInvariantChecker(databaseUrl: string, timeoutMs = 60_000): Promise<InvariantVerdict> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(ROOT, "node_modules", ".bin", "tsx"), ["src/cli/check-invariants.ts"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, exitCode: code, output: output.trimEnd() });
    });
  });
}
