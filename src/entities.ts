import { concertEntities } from "./modules/concert/concert.entities.js";
import { paymentEntities } from "./modules/payment/payment.entities.js";
import { reservationEntities } from "./modules/reservation/reservation.entities.js";
import { walletEntities } from "./modules/wallet/wallet.entities.js";
import type { EntityList } from "./platform/db/database.js";

/**
 * Every table the ORM maps, as each module lists its own. Part of the
 * composition root (deps.ts), apart so the CLI commands and tests that only
 * open the database load no more than the entities.
 */
export const entities: EntityList = [...concertEntities, ...reservationEntities, ...walletEntities, ...paymentEntities];
