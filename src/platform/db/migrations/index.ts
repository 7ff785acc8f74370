import type { MigrationObject } from "@mikro-orm/core";
import { Migration20261130000000Catalog } from "./Migration20261130000000Catalog.js";
import { Migration20261201000000SeatHolds } from "./Migration20261201000000SeatHolds.js";
import { Migration20261202000000Wallet } from "./Migration20261202000000Wallet.js";
import { Migration20261203000000Payment } from "./Migration20261203000000Payment.js";
import { Migration20261204000000HoldIdempotency } from "./Migration20261204000000HoldIdempotency.js";

/** Every migration, oldest first. Listed by hand so the same list works from
 * TypeScript sources, compiled output and tests. */
export const migrationsList: MigrationObject[] = [
  { name: "Migration20261130000000Catalog", class: Migration20261130000000Catalog },
  { name: "Migration20261201000000SeatHolds", class: Migration20261201000000SeatHolds },
  { name: "Migration20261202000000Wallet", class: Migration20261202000000Wallet },
  { name: "Migration20261203000000Payment", class: Migration20261203000000Payment },
  { name: "Migration20261204000000HoldIdempotency", class: Migration20261204000000HoldIdempotency },
];
