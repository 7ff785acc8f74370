import { randomUUID } from "node:crypto";
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { Wallet } from "./wallet.entity.js";

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
