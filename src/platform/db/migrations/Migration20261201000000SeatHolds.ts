import { Migration } from "@mikro-orm/migrations";

/**
 * Seat holds. The seat row carries its current hold and sale, so
 * winning a seat is one conditional UPDATE of that row (the fencing check);
 * reservations keep the history and what payment will confirm.
 */
export class Migration20261201000000SeatHolds extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      alter table "seat"
        add column "held_by_reservation_id" uuid null,
        add column "hold_expires_at" timestamptz null,
        add column "sold_reservation_id" uuid null,
        add column "version" int not null default 1,
        add constraint "seat_hold_pair_check" check ((held_by_reservation_id is null) = (hold_expires_at is null)),
        add constraint "seat_sold_not_held_check" check (sold_reservation_id is null or held_by_reservation_id is null),
        add constraint "seat_held_by_reservation_id_unique" unique ("held_by_reservation_id"),
        add constraint "seat_sold_reservation_id_unique" unique ("sold_reservation_id");`);
    this.addSql(`
      create table "reservation" (
        "id" uuid not null,
        "user_id" varchar(64) not null,
        "seat_id" bigint not null,
        "amount" bigint not null,
        "status" text check ("status" in ('HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED')) not null,
        "hold_expires_at" timestamptz not null,
        "created_at" timestamptz not null,
        "confirmed_at" timestamptz null,
        "version" int not null default 1,
        constraint "reservation_pkey" primary key ("id"),
        constraint "reservation_amount_check" check (amount > 0),
        constraint "reservation_confirmed_at_check" check ((status = 'CONFIRMED') = (confirmed_at is not null))
      );`);
    this.addSql(`alter table "reservation" add constraint "reservation_seat_id_foreign"
      foreign key ("seat_id") references "seat" ("id") on update cascade;`);
    this.addSql(`create index "reservation_user_id_created_at_index" on "reservation" ("user_id", "created_at");`);
    this.addSql(`create index "reservation_seat_id_index" on "reservation" ("seat_id");`);
    // Live claims only: the per-user limit and the sweeper read these, and they stay small as history grows.
    this.addSql(`create index "reservation_user_id_held_index" on "reservation" ("user_id", "hold_expires_at") where status = 'HELD';`);
    this.addSql(`create index "reservation_held_expiry_index" on "reservation" ("hold_expires_at") where status = 'HELD';`);
    // With seat.sold_reservation_id: a seat is sold at most once.
    this.addSql(`create unique index "reservation_seat_id_confirmed_unique" on "reservation" ("seat_id") where status = 'CONFIRMED';`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "reservation" cascade;`);
    this.addSql(`
      alter table "seat"
        drop constraint if exists "seat_hold_pair_check",
        drop constraint if exists "seat_sold_not_held_check",
        drop constraint if exists "seat_held_by_reservation_id_unique",
        drop constraint if exists "seat_sold_reservation_id_unique",
        drop column if exists "held_by_reservation_id",
        drop column if exists "hold_expires_at",
        drop column if exists "sold_reservation_id",
        drop column if exists "version";`);
  }
}
