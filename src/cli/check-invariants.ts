/**
 * Checks the money and seat rules against DATABASE_URL (or the embedded data
 * dir) and exits non-zero when any is broken. Every race test and every
 * benchmark scenario ends with it.
 *
 * Usage: npm run check:invariants
 */
import { checkInvariants, INVARIANT_RULES } from "../modules/payment/invariants.js";
import { entities } from "../entities.js";
import { openDatabase } from "../platform/db/database.js";
import { createLogger } from "../platform/logger.js";
import { databaseName, runCommand } from "./command.js";

runCommand(async (config) => {
  const db = await openDatabase(config.database, entities, createLogger("warn"));
  try {
    const violations = await checkInvariants(db.orm.em.fork());
    console.log(databaseName(config.database));
    for (const rule of INVARIANT_RULES) {
      const v = violations.find((x) => x.rule === rule);
      console.log(`  ${v ? "VIOLATED" : "ok      "}  ${rule}`);
      for (const row of v?.rows ?? []) console.log(`            ${JSON.stringify(row)}`);
    }
    if (violations.length) throw new Error(`${violations.length} invariant(s) violated`);
  } finally {
    await db.close();
  }
});
