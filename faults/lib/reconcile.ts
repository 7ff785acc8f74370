/**
 * Every OK answer a client got, checked against what the database holds
 * afterwards, plus the money rules the checker does not phrase per client:
 *
 * - every OK HoldSeat (or hold found again with ListReservations) is a reservation of that user, seat and amount;
 * - every OK ChargeBalance is a CHARGE ledger entry of that id, amount and key, leaving the balance answered;
 * - every OK PayReservation is exactly one payment of that id and amount for that
 *   reservation, now CONFIRMED, whose ledger debit left the balance answered;
 * - OK answers for one idempotency key all name the same record (a retry returns the first result);
 * - no payment or charge in the database that no client attempted;
 * - per user, the wallet balance = charges - payments.
 *
 * "Data lost" counts OK answers with no matching record (missing, or another amount).
 */
import { Client } from "pg";
import type { Attempt } from "./attempts";

export interface Reconciliation {
  checked: { holds: number; charges: number; payments: number };
  /** OK answers without a matching database record, by RPC. */
  lost: { holds: number; charges: number; payments: number };
  /** OK answers whose record exists but whose answered balance differs from the ledger's. */
  balanceAnswersWrong: number;
  /** Idempotency keys whose OK answers named different records. */
  conflictingAnswers: number;
  /** Payments / charges in the database whose key no client ever sent. */
  unattemptedPayments: number;
  unattemptedCharges: number;
  /** Payments that committed although no attempt with their key got an OK (the answer was lost). */
  committedUnanswered: number;
  /** Users whose balance is not charges minus payments. */
  balanceMismatches: number;
  /** Holds in the database that no OK answer named (a lost answer; harmless, they lapse). */
  unansweredHolds: number;
  /** Up to 5 of them: user, seat, status, when. */
  unansweredHoldExamples: string[];
  /** Up to 10 examples of anything above that is wrong. */
  examples: string[];
}

interface ReservationRow {
  id: string;
  user_id: string;
  status: string;
  created_at: string;
  amount: string;
  date: string;
  seat_number: number;
}
interface PaymentRow {
  id: string;
  reservation_id: string;
  user_id: string;
  amount: string;
  idempotency_key: string | null;
}
interface EntryRow {
  id: string;
  user_id: string;
  kind: string;
  amount: string;
  balance_after: string;
  idempotency_key: string | null;
  reservation_id: string | null;
}

export async function reconcile(databaseUrl: string, attempts: Attempt[]): Promise<Reconciliation> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  let reservations: ReservationRow[], payments: PaymentRow[], entries: EntryRow[], wallets: { user_id: string; balance: string }[];
  try {
    reservations = (
      await c.query<ReservationRow>(
        `select r.id, r.user_id, r.status, r.amount, d.date::text as date, s.seat_number, to_char(r.created_at, 'HH24:MI:SS.MS') as created_at
         from reservation r join seat s on s.id = r.seat_id join concert_date d on d.id = s.concert_date_id`,
      )
    ).rows;
    payments = (await c.query<PaymentRow>(`select id, reservation_id, user_id, amount, idempotency_key from payment`)).rows;
    entries = (await c.query<EntryRow>(`select id, user_id, kind, amount, balance_after, idempotency_key, reservation_id from wallet_entry`)).rows;
    wallets = (await c.query<{ user_id: string; balance: string }>(`select user_id, balance from wallet`)).rows;
  } finally {
    await c.end();
  }

  const r: Reconciliation = {
    checked: { holds: 0, charges: 0, payments: 0 },
    lost: { holds: 0, charges: 0, payments: 0 },
    balanceAnswersWrong: 0,
    conflictingAnswers: 0,
    unattemptedPayments: 0,
    unattemptedCharges: 0,
    committedUnanswered: 0,
    balanceMismatches: 0,
    unansweredHolds: 0,
    unansweredHoldExamples: [],
    examples: [],
  };
  const example = (s: string) => r.examples.length < 10 && r.examples.push(s);
  const reservationById = new Map(reservations.map((x) => [x.id, x]));
  const paymentById = new Map(payments.map((x) => [x.id, x]));
  const paymentsByReservation = new Map<string, PaymentRow[]>();
  for (const p of payments) paymentsByReservation.set(p.reservation_id, [...(paymentsByReservation.get(p.reservation_id) ?? []), p]);
  const entryById = new Map(entries.map((x) => [x.id, x]));
  const debitOf = new Map(entries.filter((e) => e.kind === "PAYMENT" && e.reservation_id).map((e) => [e.reservation_id!, e]));

  const oks = attempts.filter((a) => a.code === "OK" && a.ok);
  const answeredHolds = new Set<string>();
  for (const a of oks) {
    const ok = a.ok!;
    if ((a.rpc === "HoldSeat" || a.rpc === "ListReservations") && ok.reservationId) {
      r.checked.holds++;
      answeredHolds.add(ok.reservationId);
      const row = reservationById.get(ok.reservationId);
      if (!row || row.user_id !== a.buyer || row.date !== ok.date || row.seat_number !== ok.seatNumber || Number(row.amount) !== ok.amount) {
        r.lost.holds++;
        example(
          `${a.rpc} OK ${ok.reservationId} (${a.buyer}, ${ok.date} #${ok.seatNumber}, ${ok.amount}): ${row ? `database has ${JSON.stringify(row)}` : "no such reservation"}`,
        );
      }
    } else if (a.rpc === "ChargeBalance") {
      r.checked.charges++;
      const row = ok.entryId ? entryById.get(ok.entryId) : undefined;
      if (row?.kind !== "CHARGE" || row.user_id !== a.buyer || Number(row.amount) !== ok.amount || row.idempotency_key !== (a.key ?? null)) {
        r.lost.charges++;
        example(
          `ChargeBalance OK ${ok.entryId} (${a.buyer}, ${ok.amount}, key ${a.key}): ${row ? `database has ${JSON.stringify(row)}` : "no such ledger entry"}`,
        );
      } else if (Number(row.balance_after) !== ok.balance) {
        r.balanceAnswersWrong++;
        example(`ChargeBalance OK ${ok.entryId} answered balance ${ok.balance}, ledger says ${row.balance_after}`);
      }
    } else if (a.rpc === "PayReservation") {
      r.checked.payments++;
      const row = ok.paymentId ? paymentById.get(ok.paymentId) : undefined;
      const forReservation = ok.reservationId ? (paymentsByReservation.get(ok.reservationId) ?? []) : [];
      const reservation = ok.reservationId ? reservationById.get(ok.reservationId) : undefined;
      if (
        !row ||
        row.reservation_id !== ok.reservationId ||
        Number(row.amount) !== ok.amount ||
        row.user_id !== a.buyer ||
        forReservation.length !== 1 ||
        reservation?.status !== "CONFIRMED"
      ) {
        r.lost.payments++;
        example(
          `PayReservation OK ${ok.paymentId} (${a.buyer}, reservation ${ok.reservationId}, ${ok.amount}): ${row ? `database has ${JSON.stringify(row)}` : "no such payment"}, ` +
            `${forReservation.length} payment(s) for the reservation, reservation ${reservation?.status ?? "missing"}`,
        );
      } else {
        const debit = debitOf.get(row.reservation_id);
        if (!debit || Number(debit.balance_after) !== ok.balance) {
          r.balanceAnswersWrong++;
          example(`PayReservation OK ${ok.paymentId} answered balance ${ok.balance}, ledger says ${debit?.balance_after ?? "no debit"}`);
        }
      }
    }
  }

  // A retry with the same key returns the first result: every OK for one key names one record.
  const named = new Map<string, Set<string>>();
  for (const a of oks) {
    if (!a.key) continue;
    const id =
      a.rpc === "PayReservation" ? a.ok!.paymentId : a.rpc === "ChargeBalance" ? a.ok!.entryId : a.rpc === "HoldSeat" ? a.ok!.reservationId : undefined;
    if (!id) continue;
    const k = `${a.rpc} ${a.buyer} ${a.key}`;
    named.set(k, (named.get(k) ?? new Set()).add(id));
  }
  for (const [k, ids] of named)
    if (ids.size > 1) {
      r.conflictingAnswers++;
      example(`${k}: OK answers named ${[...ids].join(", ")}`);
    }

  const sent = (rpc: string) => new Set(attempts.filter((a) => a.rpc === rpc && a.key).map((a) => `${a.buyer} ${a.key}`));
  const payKeys = sent("PayReservation");
  const chargeKeys = sent("ChargeBalance");
  const answeredPayKeys = new Set(oks.filter((a) => a.rpc === "PayReservation" && a.key).map((a) => `${a.buyer} ${a.key}`));
  for (const p of payments) {
    const k = `${p.user_id} ${p.idempotency_key}`;
    if (!p.idempotency_key || !payKeys.has(k)) {
      r.unattemptedPayments++;
      example(`payment ${p.id} (${p.user_id}, key ${p.idempotency_key}) was never attempted by a client`);
    } else if (!answeredPayKeys.has(k)) r.committedUnanswered++;
  }
  for (const e of entries)
    if (e.kind === "CHARGE" && (!e.idempotency_key || !chargeKeys.has(`${e.user_id} ${e.idempotency_key}`))) {
      r.unattemptedCharges++;
      example(`charge ${e.id} (${e.user_id}, key ${e.idempotency_key}) was never attempted by a client`);
    }

  const charged = new Map<string, number>();
  for (const e of entries) if (e.kind === "CHARGE") charged.set(e.user_id, (charged.get(e.user_id) ?? 0) + Number(e.amount));
  const paid = new Map<string, number>();
  for (const p of payments) paid.set(p.user_id, (paid.get(p.user_id) ?? 0) + Number(p.amount));
  for (const w of wallets) {
    const expected = (charged.get(w.user_id) ?? 0) - (paid.get(w.user_id) ?? 0);
    if (Number(w.balance) !== expected) {
      r.balanceMismatches++;
      example(`wallet ${w.user_id}: balance ${w.balance}, charges - payments = ${expected}`);
    }
  }
  const unanswered = reservations.filter((x) => !answeredHolds.has(x.id));
  r.unansweredHolds = unanswered.length;
  r.unansweredHoldExamples = unanswered.slice(0, 5).map((x) => `${x.id} ${x.user_id} ${x.date} #${x.seat_number} ${x.status} created ${x.created_at}`);
  return r;
}

export const dataLost = (r: Reconciliation): number => r.lost.holds + r.lost.charges + r.lost.payments;
