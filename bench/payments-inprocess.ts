/**
 * PayReservation's own cost, without gRPC, the queue gate or a second
 * process: `--payments` payments per round straight through the service at
 * `--concurrency`, after one warm-up round, against a PostgreSQL of its own.
 * Prints payments/s and this process's CPU per payment. The same file run in
 * a worktree of an earlier commit measures that commit's payment code.
 *
 *   npx tsx bench/payments-inprocess.ts [--payments 600] [--concurrency 4] [--rounds 2]
 */
import { parseArgs } from "node:util";
import { MikroORM } from "@mikro-orm/postgresql";
import { startPostgres } from "../test/harness/services";
import { entities } from "../src/entities";
import { ormOptions } from "../src/platform/db/database";
import { payReservation } from "../src/modules/payment/payment.service";
import { systemClock } from "../src/platform/clock";

const { values } = parseArgs({
  options: {
    payments: { type: "string", default: "600" },
    concurrency: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
  },
});
const N = Number(values.payments);
const CONC = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const PRICE = 50_000;

async function main() {
  const pg = await startPostgres();
  const orm = await MikroORM.init(ormOptions(entities, { clientUrl: pg.adminUrl }, 8));
  await orm.getMigrator().up();
  const em = orm.em.fork();
  const total = (ROUNDS + 1) * N;
  // Wallets, ledger lines and holds as ChargeBalance and HoldSeat leave them; only the payments are timed.
  await em.execute(`insert into concert (id, title, artist, venue) values ('m', 'm', 'm', 'm')`);
  await em.execute(
    `insert into concert_date (concert_id, date, starts_at) select 'm', date '2030-01-01' + g, timestamptz '2030-01-01 19:00Z' + g * interval '1 day' from generate_series(0, ${Math.ceil(total / 50)} - 1) g`,
  );
  await em.execute(`insert into seat (concert_date_id, seat_number, price) select d.id, s, ${PRICE} from concert_date d cross join generate_series(1, 50) s`);
  await em.execute(`insert into reservation (id, user_id, seat_id, amount, status, hold_expires_at, created_at)
     select gen_random_uuid(), 'u' || row_number() over (order by s.id), s.id, s.price, 'HELD', now() + interval '1 hour', now() from seat s order by s.id limit ${total}`);
  await em.execute(
    `update seat s set held_by_reservation_id = r.id, hold_expires_at = r.hold_expires_at, version = s.version + 1 from reservation r where r.seat_id = s.id`,
  );
  await em.execute(`insert into wallet (user_id, balance, version, created_at, updated_at) select user_id, ${2 * PRICE}, 1, now(), now() from reservation`);
  await em.execute(
    `insert into wallet_entry (id, user_id, kind, amount, balance_after, created_at) select gen_random_uuid(), user_id, 'CHARGE', ${2 * PRICE}, ${2 * PRICE}, now() from reservation`,
  );
  await em.execute(`analyze`);
  const rows = await em.execute<{ id: string; user_id: string }[]>(`select id, user_id from reservation order by user_id`);
  let next = 0;
  const run = async (n: number) => {
    const end = next + n;
    const worker = async () => {
      while (next < end) {
        const r = rows[next++];
        const res = await payReservation(orm.em.fork(), systemClock, { userId: r.user_id, reservationId: r.id, idempotencyKey: `k-${r.id}` });
        if (res.balance !== PRICE) throw new Error("bad balance");
      }
    };
    await Promise.all(Array.from({ length: CONC }, worker));
  };
  await run(N); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await run(N);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    console.log(
      `round ${round + 1}: ${N} payments, concurrency ${CONC}: ${((N / ms) * 1000).toFixed(0)} payments/s, node CPU ${((c.user + c.system) / 1000 / N).toFixed(2)} ms/payment`,
    );
  }
  await orm.close();
  pg.stop();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
