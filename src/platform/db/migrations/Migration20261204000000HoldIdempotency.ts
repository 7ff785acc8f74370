import { Migration } from "@mikro-orm/migrations";

/**
 * HoldSeat idempotency keys ("Survive faults"): a retried HoldSeat finds its
 * first hold by (user, key). Nullable, since keys are optional and every
 * earlier row has none; unique where set, so two racing holds with one key
 * cannot both commit.
 */
export class Migration20261204000000HoldIdempotency extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "reservation" add column "idempotency_key" varchar(128) null;`);
    this.addSql(
      `create unique index "reservation_user_id_idempotency_key_unique" on "reservation" ("user_id", "idempotency_key") where idempotency_key is not null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "reservation_user_id_idempotency_key_unique";`);
    this.addSql(`alter table "reservation" drop column if exists "idempotency_key";`);
  }
}
