import { WalletEntry } from "./wallet-entry.entity.js";
import { Wallet } from "./wallet.entity.js";

/** The wallet module's tables, for the composition root's entity list. */
export const walletEntities = [Wallet, WalletEntry];
