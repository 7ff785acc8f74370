import type { ConnectRouter } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { WalletEntryKind, type WalletEntrySchema } from "../../../gen/boxoffice/wallet/v1/wallet_pb.js";
import { WalletService } from "../../../gen/boxoffice/wallet/v1/wallet_service_pb.js";
import type { Deps } from "../../deps.js";
import { SCOPES } from "../../rpc/auth.js";
import { actingUser, requireScope } from "../../rpc/identity.js";
import { chargeBalance, getBalance, listEntries, type EntryView } from "./wallet.service.js";

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

export function registerWalletRoutes(router: ConnectRouter, deps: Deps): void {
  router.service(WalletService, {
    async chargeBalance(req, ctx) {
      // Only the payment provider's service credits wallets: end users cannot mint money.
      requireScope(ctx, SCOPES.walletCharge);
      const r = await chargeBalance(deps.orm.em.fork(), deps.clock, deps.config.wallet, {
        userId: actingUser(ctx, req.userId, SCOPES.walletCharge),
        amount: req.amount,
        idempotencyKey: req.idempotencyKey,
      });
      return { balance: BigInt(r.balance), entry: toWalletEntryInit(r.entry) };
    },
    async getBalance(req, ctx) {
      const userId = actingUser(ctx, req.userId);
      return { userId, balance: BigInt(await getBalance(deps.orm.em.fork(), userId)) };
    },
    async listWalletEntries(req, ctx) {
      const page = await listEntries(deps.orm.em.fork(), actingUser(ctx, req.userId), req.pageSize, req.pageToken);
      return { entries: page.entries.map(toWalletEntryInit), nextPageToken: page.nextPageToken };
    },
  });
}
