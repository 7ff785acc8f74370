import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/** One prepaid balance per user, created on the first charge. */
export const Wallet = defineEntity({
  name: "Wallet",
  tableName: "wallet",
  checks: [{ name: "wallet_balance_check", expression: "balance >= 0" }],
  properties: {
    userId: p.string().primary().length(64),
    /** Whole won. Always the sum of this wallet's ledger entries. */
    balance: p.bigint("number").default(0),
    version: p.integer().version(),
    createdAt: p.datetime().columnType("timestamptz"),
    updatedAt: p.datetime().columnType("timestamptz"),
  },
});
export type Wallet = InferEntity<typeof Wallet>;
