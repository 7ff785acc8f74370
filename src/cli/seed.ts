/**
 * Loads the demo catalog (the one `npm start` serves on a fresh embedded
 * database) into DATABASE_URL, or the embedded PGlite when it is unset.
 * Applies pending migrations first. Safe to run again: existing concerts are kept.
 *
 * Usage: npm run seed
 */
import { seedDemoCatalog } from "../modules/concert/demo-catalog.js";
import { entities } from "../entities.js";
import { openDatabase } from "../platform/db/database.js";
import { createLogger } from "../platform/logger.js";
import { databaseName, runCommand } from "./command.js";

runCommand(async (config) => {
  const db = await openDatabase(config.database, entities, createLogger("warn"));
  try {
    const added = await seedDemoCatalog(db.orm.em.fork());
    const [counts] = await db.orm.em.fork().execute<{ concerts: number; dates: number; seats: number }[]>(
      `select (select count(*)::int from concert) as concerts,
              (select count(*)::int from concert_date) as dates,
              (select count(*)::int from seat) as seats`,
    );
    console.log(databaseName(config.database));
    console.log(added ? `  added ${added} demo concert(s)` : "  the demo catalog is already there: nothing added");
    console.log(`  now: ${counts.concerts} concerts, ${counts.dates} dates, ${counts.seats} seats`);
  } finally {
    await db.close();
  }
});
