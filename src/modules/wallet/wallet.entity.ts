import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { failedPrecondition } from "../../platform/errors.js";
import { Reason } from "../../platform/reasons.js";
import { WalletEntry } from "./wallet-entry.entity.js";

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
