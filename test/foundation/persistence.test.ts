/**
 * Migrations are the only writer of DDL: they must build exactly the schema
 * the entities describe, apply once, and the commands around them must be
 * safe to run again. Real PostgreSQL throughout.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Client } from "pg";
import { entities } from "../../src/entities";
import { openDatabase, type Database } from "../../src/platform/db/database";
import { migrationsList } from "../../src/platform/db/migrations/index";
import { createLogger } from "../../src/platform/logger";
import { createTestDatabase, type TestDatabase } from "../harness";

const silent = createLogger("silent");
const dbConfig = (url: string) => ({ url, poolMax: 2, pgliteDataDir: "memory://" });

let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.drop();
});

test("openDatabase applies every migration once, and the entities agree with the migrated schema", async () => {
  let first: Database | undefined;
  let second: Database | undefined;
  try {
    first = await openDatabase(dbConfig(db.url), entities, silent);
    const executed = await first.orm.getMigrator().getExecutedMigrations();
    expect(executed.map((m) => m.name)).toEqual(migrationsList.map((m) => m.name));
    // What schema sync would change to match the entities: nothing.
    expect(await first.orm.schema.getUpdateSchemaSQL({ wrap: false })).toBe("");
    await first.close();
    first = undefined;

    second = await openDatabase(dbConfig(db.url), entities, silent);
    const migrator = second.orm.getMigrator();
    expect(await migrator.getPendingMigrations()).toEqual([]);
    expect(await migrator.up()).toEqual([]);
    expect(await migrator.getExecutedMigrations()).toHaveLength(migrationsList.length);
  } finally {
    await first?.close();
    await second?.close();
  }
});

test("`npm run migrate` and `npm run seed` (the CLI commands) report what they did and are safe to repeat", async () => {
  const run = async (script: "migrate" | "seed") => {
    const { stdout } = await promisify(execFile)("node_modules/.bin/tsx", [`src/cli/${script}.ts`], {
      env: { PATH: process.env.PATH, DATABASE_URL: db.url },
      timeout: 60_000,
    });
    return stdout;
  };
  const migrated = await run("migrate");
  for (const m of migrationsList) expect(migrated).toContain(`applied ${m.name}`);
  expect(migrated).toContain(`${migrationsList.length} migration(s) applied`);

  const seeded = await run("seed");
  expect(seeded).toContain("added 4 demo concert(s)");
  const again = await run("seed");
  expect(again).toContain("nothing added");
  expect(again).toContain("now: 4 concerts, 12 dates, 600 seats");

  const client = new Client({ connectionString: db.url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `select (select count(*)::int from concert) as concerts,
              (select count(*)::int from concert_date) as dates,
              (select count(*)::int from seat) as seats,
              (select count(distinct (concert_date_id, seat_number))::int from seat) as distinct_seats,
              (select count(*)::int from seat where seat_number between 1 and 50 and price > 0) as valid_seats`,
    );
    expect(rows[0]).toEqual({ concerts: 4, dates: 12, seats: 600, distinct_seats: 600, valid_seats: 600 });
  } finally {
    await client.end();
  }
});
