import { Migration } from "@mikro-orm/migrations";

/**
 * Wallets and their ledger. The balance is a cache of the ledger
 * kept in the same transaction; the check constraint is the last word on
 * "never negative", the unique key on "one change per idempotency key".
 */
export class Migration20261202000000Wallet extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "wallet" (
        "user_id" varchar(64) not null,
        "balance" bigint not null default 0,
        "version" int not null default 1,
        "created_at" timestamptz not null,
        "updated_at" timestamptz not null,
        constraint "wallet_pkey" primary key ("user_id"),
        constraint "wallet_balance_check" check (balance >= 0)
      );`);
    this.addSql(`
      create table "wallet_entry" (
        "id" uuid not null,
        "seq" bigserial,
        "user_id" varchar(64) not null,
        "kind" text check ("kind" in ('CHARGE', 'PAYMENT')) not null,
        "amount" bigint not null,
        "balance_after" bigint not null,
        "idempotency_key" varchar(128) null,
        "reservation_id" uuid null,
        "created_at" timestamptz not null,
        constraint "wallet_entry_pkey" primary key ("id"),
        constraint "wallet_entry_seq_unique" unique ("seq"),
        constraint "wallet_entry_user_id_idempotency_key_unique" unique ("user_id", "idempotency_key"),
        constraint "wallet_entry_amount_check" check ((kind = 'CHARGE' and amount > 0) or (kind = 'PAYMENT' and amount < 0)),
        constraint "wallet_entry_balance_after_check" check (balance_after >= 0)
      );`);
    this.addSql(`alter table "wallet_entry" add constraint "wallet_entry_user_id_foreign"
      foreign key ("user_id") references "wallet" ("user_id") on update cascade;`);
    this.addSql(`create index "wallet_entry_user_id_seq_index" on "wallet_entry" ("user_id", "seq");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "wallet_entry" cascade;`);
    this.addSql(`drop table if exists "wallet" cascade;`);
  }
}
