import { ConfigError, loadConfig, type Config } from "../config.js";
import { IN_MEMORY } from "../platform/db/embedded-postgres.js";
import { redact } from "../platform/redis.js";

/**
 * Runs a one-shot command with the server's configuration: prints plain lines
 * for a person, exits 2 on a bad configuration and 1 on any other failure.
 */
export function runCommand(body: (config: Config) => Promise<void>): void {
  let config: Config;
  try {
    config = loadConfig(process.env, { serving: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(2);
  }
  body(config).then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** Which database a command works on, safe to print. */
export function databaseName(database: Config["database"]): string {
  if (database.url) return `PostgreSQL ${redact(database.url)}`;
  return database.pgliteDataDir === IN_MEMORY ? "embedded PGlite in memory" : `embedded PGlite in ${database.pgliteDataDir}`;
}
