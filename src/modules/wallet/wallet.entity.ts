import { randomUUID } from "node:crypto";
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { failedPrecondition } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";

/*
 * The wallet aggregate: a balance and its append-only ledger. Both entities
 * live in this one file because each needs the other at run time (the
 * wallet makes its ledger lines; a line belongs to its wallet).
 */

/** One prepaid balance per user, created on the first charge. */
const WalletSchema = defineEntity({
  name: "Wallet",
  tableName: "wallet",
  checks: [{ name: "wallet_balance_check", expression: "balance >= 0" }],
  properties: {
    userId: p.string().primary().length(64),
    /** Whole won. Always the sum of this wallet's ledger entries. */
    balance: p.bigint("number").default(0),
    /** Bumped by every change: a flush that read an older balance fails with OptimisticLockError instead of overwriting it. */
    version: p.integer().version(),
    createdAt: p.datetime().columnType("timestamptz"),
    updatedAt: p.datetime().columnType("timestamptz"),
  },
});

export interface Wallet extends InferEntity<typeof WalletSchema> {}
export class Wallet {
  /**
   * Adds `amount` and returns its CHARGE ledger line (for the caller to
   * persist), or refuses with BALANCE_LIMIT_EXCEEDED past `balanceMax`.
   */
  credit(amount: number, balanceMax: number, now: Date, idempotencyKey?: string): WalletEntry {
    if (this.balance + amount > balanceMax) {
      throw failedPrecondition(Reason.BALANCE_LIMIT_EXCEEDED, `a balance may not exceed ${balanceMax} won`, { max: String(balanceMax) });
    }
    return this.change("CHARGE", amount, now, idempotencyKey);
  }

  /**
   * Takes `amount` and returns its PAYMENT ledger line (for the caller to
   * persist), or refuses with INSUFFICIENT_BALANCE. The balance's check
   * constraint is the database's own last word on the same rule.
   */
  debit(amount: number, now: Date, payment: { reservationId: string; idempotencyKey?: string }): WalletEntry {
    if (this.balance < amount) {
      // The figures go in the metadata for the client, not in the message: messages reach the logs.
      throw failedPrecondition(Reason.INSUFFICIENT_BALANCE, "the balance does not cover the amount", {
        balance: String(this.balance),
        required: String(amount),
      });
    }
    return this.change("PAYMENT", -amount, now, payment.idempotencyKey, payment.reservationId);
  }

  private change(kind: WalletEntry["kind"], amount: number, now: Date, idempotencyKey?: string, reservationId?: string): WalletEntry {
    this.balance += amount;
    this.updatedAt = now;
    return new WalletEntry({
      wallet: this,
      kind,
      amount,
      balanceAfter: this.balance,
      idempotencyKey: idempotencyKey ?? null,
      reservationId: reservationId ?? null,
      createdAt: now,
    });
  }
}
WalletSchema.setClass(Wallet);

export const WALLET_ENTRY_KINDS = ["CHARGE", "PAYMENT"] as const;
export type WalletEntryKind = (typeof WALLET_ENTRY_KINDS)[number];

/** One change of a balance. Append-only. */
const WalletEntrySchema = defineEntity({
  name: "WalletEntry",
  tableName: "wallet_entry",
  indexes: [{ name: "wallet_entry_user_id_seq_index", properties: ["wallet", "seq"] }],
  uniques: [{ name: "wallet_entry_user_id_idempotency_key_unique", properties: ["wallet", "idempotencyKey"] }],
  checks: [
    { name: "wallet_entry_amount_check", expression: "(kind = 'CHARGE' and amount > 0) or (kind = 'PAYMENT' and amount < 0)" },
    { name: "wallet_entry_balance_after_check", expression: "balance_after >= 0" },
  ],
  properties: {
    id: p.uuid().primary(),
    /** Insertion order, for stable newest-first paging. */
    seq: p.bigint("number").autoincrement().unique().columnType("bigserial"),
    wallet: () => p.manyToOne(Wallet).fieldName("user_id"),
    kind: p.enum([...WALLET_ENTRY_KINDS]),
    /** Signed whole won: positive for a charge, negative for a payment. */
    amount: p.bigint("number"),
    balanceAfter: p.bigint("number"),
    idempotencyKey: p.string().length(128).nullable(),
    reservationId: p.uuid().nullable(),
    createdAt: p.datetime().columnType("timestamptz"),
  },
});

export interface WalletEntry extends InferEntity<typeof WalletEntrySchema> {}
export class WalletEntry {
  /**
   * A new ledger line; the wallet's own methods make them. Rows loaded from
   * the database skip the constructor (the ORM hydrates a bare prototype).
   */
  constructor(line?: Omit<WalletEntry, "id" | "seq">) {
    if (line) Object.assign(this, { id: randomUUID(), ...line });
  }
}
WalletEntrySchema.setClass(WalletEntry);
