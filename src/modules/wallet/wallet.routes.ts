import type { ConnectRouter } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { WalletService } from "../../../gen/boxoffice/wallet/v1/wallet_service_pb.js";
import type { Clock } from "../../platform/clock.js";
import { SCOPES } from "../../rpc/auth.js";
import { actingUser, requireScope } from "../../rpc/identity.js";
import { toWalletEntryInit } from "./wallet.mapping.js";
import { chargeBalance, getBalance, listEntries, type WalletLimits } from "./wallet.service.js";

/** What the wallet handlers use, built by the composition root. */
export interface WalletRouteDeps {
  /** A fresh identity map per call. */
  em: () => EntityManager;
  clock: Clock;
  limits: WalletLimits;
}

export function registerWalletRoutes(router: ConnectRouter, deps: WalletRouteDeps): void {
  router.service(WalletService, {
    async chargeBalance(req, ctx) {
      // Only the payment provider's service credits wallets: end users cannot mint money.
      requireScope(ctx, SCOPES.walletCharge);
      const r = await chargeBalance(deps.em(), deps.clock, deps.limits, {
        userId: actingUser(ctx, req.userId, SCOPES.walletCharge),
        amount: req.amount,
        idempotencyKey: req.idempotencyKey,
      });
      return { balance: BigInt(r.balance), entry: toWalletEntryInit(r.entry) };
    },
    async getBalance(req, ctx) {
      const userId = actingUser(ctx, req.userId);
      return { userId, balance: BigInt(await getBalance(deps.em(), userId)) };
    },
    async listWalletEntries(req, ctx) {
      const page = await listEntries(deps.em(), actingUser(ctx, req.userId), req.pageSize, req.pageToken);
      return { entries: page.entries.map(toWalletEntryInit), nextPageToken: page.nextPageToken };
    },
  });
}
