import { Migration } from "@mikro-orm/migrations";

/** Payments: one per reservation, one per (user, idempotency key). */
export class Migration20261203000000Payment extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "payment" (
        "id" uuid not null,
        "reservation_id" uuid not null,
        "user_id" varchar(64) not null,
        "amount" bigint not null,
        "idempotency_key" varchar(128) null,
        "created_at" timestamptz not null,
        constraint "payment_pkey" primary key ("id"),
        constraint "payment_reservation_id_unique" unique ("reservation_id"),
        constraint "payment_user_id_idempotency_key_unique" unique ("user_id", "idempotency_key"),
        constraint "payment_amount_check" check (amount > 0)
      );`);
    this.addSql(`alter table "payment" add constraint "payment_reservation_id_foreign"
      foreign key ("reservation_id") references "reservation" ("id") on update cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "payment" cascade;`);
  }
}
