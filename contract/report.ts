/** One line per check, and the tally the exit code is decided from. */

/** Thrown by a check the deployment makes impossible (or that lacks what an earlier check should have given). */
export class Skip extends Error {}

export function skip(why: string): never {
  throw new Skip(why);
}

export class Report {
  passed = 0;
  failed = 0;
  skipped = 0;

  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  /** Runs `fn` as the check `name`; its value, or undefined when it failed or was skipped. */
  async check<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      const value = await fn();
      this.passed++;
      this.write(`ok   ${name}`);
      return value;
    } catch (err) {
      if (err instanceof Skip) {
        this.skipped++;
        this.write(`skip ${name} (${err.message})`);
      } else {
        this.failed++;
        this.write(`FAIL ${name} (${describe(err)})`);
      }
      return undefined;
    }
  }

  summary(): string {
    return `${this.passed} passed, ${this.failed} failed, ${this.skipped} skipped`;
  }
}

function describe(err: unknown): string {
  if (err && typeof err === "object" && "message" in err) return String((err as { message: unknown }).message).replace(/\s+/g, " ");
  return String(err);
}
