import { Migration } from "@mikro-orm/migrations";

export class Migration20261130000000Catalog extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "concert" (
        "id" varchar(64) not null primary key,
        "title" varchar(200) not null,
        "artist" varchar(200) not null,
        "venue" varchar(200) not null
      );`);
    this.addSql(`
      create table "concert_date" (
        "id" bigserial primary key,
        "concert_id" varchar(64) not null,
        "date" date not null,
        "starts_at" timestamptz not null,
        constraint "concert_date_concert_id_date_unique" unique ("concert_id", "date")
      );`);
    this.addSql(`
      create table "seat" (
        "id" bigserial primary key,
        "concert_date_id" bigint not null,
        "seat_number" smallint not null,
        "price" bigint not null,
        constraint "seat_concert_date_id_seat_number_unique" unique ("concert_date_id", "seat_number"),
        constraint "seat_seat_number_check" check (seat_number >= 1 and seat_number <= 50),
        constraint "seat_price_check" check (price > 0)
      );`);
    this.addSql(`alter table "concert_date" add constraint "concert_date_concert_id_foreign"
      foreign key ("concert_id") references "concert" ("id") on update cascade;`);
    this.addSql(`alter table "seat" add constraint "seat_concert_date_id_foreign"
      foreign key ("concert_date_id") references "concert_date" ("id") on update cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "seat" cascade;`);
    this.addSql(`drop table if exists "concert_date" cascade;`);
    this.addSql(`drop table if exists "concert" cascade;`);
  }
}
