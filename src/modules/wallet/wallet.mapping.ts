import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { WalletEntryKind, type WalletEntrySchema } from "../../../gen/boxoffice/wallet/v1/wallet_pb.js";
import type { EntryView } from "./wallet.service.js";

const KIND = { CHARGE: WalletEntryKind.CHARGE, PAYMENT: WalletEntryKind.PAYMENT } as const;

export function toWalletEntryInit(e: EntryView): MessageInitShape<typeof WalletEntrySchema> {
  return {
    entryId: e.id,
    kind: KIND[e.kind],
    amount: BigInt(e.amount),
    balanceAfter: BigInt(e.balanceAfter),
    idempotencyKey: e.idempotencyKey ?? "",
    reservationId: e.reservationId ?? "",
    createdAt: timestampFromDate(e.createdAt),
  };
}
