import { Wallet, WalletEntry } from "./wallet.entity.js";

/** The wallet module's tables, for the composition root's entity list. */
export const walletEntities = [Wallet, WalletEntry];
