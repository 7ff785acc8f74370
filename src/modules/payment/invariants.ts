import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * The money and seat rules, checked against whatever the database holds.
 * Each query returns the rows that break its rule (at most 20 shown).
 */
const CHECKS: { rule: string; sql: string }[] = [
  {
    rule: "every balance equals the sum of its ledger",
    sql: `select w.user_id, w.balance, coalesce(sum(e.amount), 0) as ledger
          from wallet w left join wallet_entry e on e.user_id = w.user_id
          group by w.user_id, w.balance having w.balance <> coalesce(sum(e.amount), 0)`,
  },
  {
    rule: "every ledger entry's balance_after is the running sum of the entries before it",
    sql: `select user_id, seq, balance_after, running from (
            select user_id, seq, balance_after, sum(amount) over (partition by user_id order by seq) as running
            from wallet_entry) x
          where balance_after <> running`,
  },
  { rule: "no balance is negative", sql: `select user_id, balance from wallet where balance < 0` },
  {
    rule: "no seat is sold twice",
    sql: `select seat_id, count(*) from reservation where status = 'CONFIRMED' group by seat_id having count(*) > 1`,
  },
  {
    rule: "a sold seat points at a CONFIRMED reservation of that seat, and vice versa",
    sql: `select s.id as seat_id, s.sold_reservation_id, r.id as reservation_id, r.status
          from seat s full join (select * from reservation where status = 'CONFIRMED') r on r.id = s.sold_reservation_id
          where s.sold_reservation_id is not null or r.id is not null
          group by s.id, s.sold_reservation_id, r.id, r.status, r.seat_id
          having r.id is null or s.id is null or r.seat_id <> s.id`,
  },
  {
    rule: "every CONFIRMED reservation has exactly one payment equal to its amount",
    sql: `select r.id, r.amount, count(p.id) as payments, sum(p.amount) as paid
          from reservation r left join payment p on p.reservation_id = r.id
          where r.status = 'CONFIRMED'
          group by r.id, r.amount having count(p.id) <> 1 or sum(p.amount) <> r.amount`,
  },
  {
    rule: "no payment without a CONFIRMED reservation",
    sql: `select p.id, p.reservation_id, r.status from payment p left join reservation r on r.id = p.reservation_id
          where r.id is null or r.status <> 'CONFIRMED'`,
  },
  {
    rule: "every payment debited its amount exactly once in the ledger",
    sql: `select p.id, p.amount, count(e.id) as entries, sum(e.amount) as debited
          from payment p left join wallet_entry e on e.reservation_id = p.reservation_id and e.kind = 'PAYMENT'
          group by p.id, p.amount having count(e.id) <> 1 or sum(e.amount) <> -p.amount`,
  },
];

export interface Violation {
  rule: string;
  rows: Record<string, unknown>[];
}

export async function checkInvariants(em: EntityManager): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const c of CHECKS) {
    const rows = await em.execute<Record<string, unknown>[]>(`select * from (${c.sql}) v limit 20`);
    if (rows.length) violations.push({ rule: c.rule, rows });
  }
  return violations;
}

export const INVARIANT_RULES = CHECKS.map((c) => c.rule);
