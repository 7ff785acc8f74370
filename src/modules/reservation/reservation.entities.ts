import { Reservation } from "./reservation.entity.js";

/** The reservation module's tables, for the composition root's entity list. */
export const reservationEntities = [Reservation];
