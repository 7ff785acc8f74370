/**
 * Applies pending migrations to DATABASE_URL, or to the embedded PGlite data
 * directory when it is unset, and prints what it applied.
 *
 * Usage: npm run migrate
 */
import { entities } from "../entities.js";
import { openDatabase } from "../platform/db/database.js";
import { createLogger } from "../platform/logger.js";
import { databaseName, runCommand } from "./command.js";

runCommand(async (config) => {
  const db = await openDatabase(config.database, entities, createLogger("warn"), { migrate: false });
  try {
    const migrator = db.orm.getMigrator();
    const applied = await migrator.up();
    const total = (await migrator.getExecutedMigrations()).length;
    console.log(databaseName(config.database));
    for (const m of applied) console.log(`  applied ${m.name}`);
    console.log(applied.length ? `${applied.length} migration(s) applied, ${total} in total` : `up to date: ${total} migration(s) applied earlier`);
  } finally {
    await db.close();
  }
});
