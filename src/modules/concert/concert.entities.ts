import { ConcertDate } from "./concert-date.entity.js";
import { Concert } from "./concert.entity.js";
import { Seat } from "./seat.entity.js";

/** The concert module's tables, for the composition root's entity list. */
export const concertEntities = [Concert, ConcertDate, Seat];
