import { Concert } from "../../modules/concert/concert.entity.js";
import { ConcertDate } from "../../modules/concert/concert-date.entity.js";
import { Seat } from "../../modules/concert/seat.entity.js";
import { Payment } from "../../modules/payment/payment.entity.js";
import { Reservation } from "../../modules/reservation/reservation.entity.js";
import { WalletEntry } from "../../modules/wallet/wallet-entry.entity.js";
import { Wallet } from "../../modules/wallet/wallet.entity.js";

/** The one list of entities the ORM knows. */
export const entities = [Concert, ConcertDate, Seat, Reservation, Wallet, WalletEntry, Payment];
