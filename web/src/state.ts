import type { Concert, ConcertDate, Payment, QueueTicket, Reservation, SeatState } from "@boxoffice/client";
import type { PageConfig } from "./config.js";
import type { Explanation } from "./reasons.js";

export type Screen =
  | { name: "starting" }
  | { name: "signin" }
  | { name: "lineup" }
  | { name: "waiting" }
  | { name: "dates" }
  | { name: "seats" }
  | { name: "confirmed" };

export interface User {
  /** The user id the server knows: the name typed (AUTH_MODE=none) or the token's `sub`. */
  id: string;
  /** What the header shows. */
  label: string;
  /** AUTH_MODE=jwt: the bearer token. */
  jwt?: string;
}

/** One show's seats as this page knows them. */
export interface Show {
  concertId: string;
  date: string;
  total: number;
  /** Free seats and their prices, as ListAvailableSeats last said. */
  free: Map<number, bigint>;
  /** Seats someone holds or bought, as ListAvailableSeats last said (its `taken_seats`). */
  taken: Map<number, SeatState>;
  /** Every price seen for a seat in this show (prices never change; taken seats keep theirs). */
  prices: Map<number, bigint>;
  /** The user's own live holds and purchases in this show, by seat. */
  mine: Map<number, Reservation>;
  loadedAt: number;
}

export interface Notice extends Explanation {
  /** What "Try again" does, when the failed action can simply run again. */
  retry?: () => void;
}

export interface State {
  config: PageConfig;
  authMode?: "none" | "jwt";
  user?: User;
  screen: Screen;
  concerts: Concert[];
  balance?: bigint;
  /** The queue ticket, as the last IssueToken / stream message / gated refusal told. */
  ticket?: QueueTicket;
  /** The largest position seen while waiting: the progress bar's full width. */
  firstPosition?: bigint;
  /** Whether a WatchQueueStatus stream is open right now. */
  live: boolean;
  concertId?: string;
  dates?: ConcertDate[];
  date?: string;
  show?: Show;
  selectedSeat?: number;
  /** The hold being checked out. */
  hold?: Reservation;
  confirmed?: { reservation: Reservation; payment: Payment; balance: bigint };
  reservations: Reservation[];
  notice?: Notice;
  /** Names of actions in flight (their buttons are disabled). */
  busy: Set<string>;
}
