import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SeatState, type ConcertDateSchema, type ConcertSchema, type SeatSchema } from "../../../gen/boxoffice/concert/v1/concert_pb.js";
import type { ListAvailableSeatsResponseSchema } from "../../../gen/boxoffice/concert/v1/concert_service_pb.js";
import type { Concert } from "./concert.entity.js";
import type { AvailableDate, ShowSeat } from "./concert.service.js";

const STATE = { FREE: SeatState.FREE, HELD: SeatState.HELD, SOLD: SeatState.SOLD } as const;

export function toConcertInit(c: Concert): MessageInitShape<typeof ConcertSchema> {
  return { concertId: c.id, title: c.title, artist: c.artist, venue: c.venue };
}

export function toConcertDateInit(d: AvailableDate): MessageInitShape<typeof ConcertDateSchema> {
  return { concertId: d.concertId, date: d.date, startsAt: timestampFromDate(d.startsAt), availableSeats: d.availableSeats, totalSeats: d.totalSeats };
}

export function toSeatInit(s: ShowSeat): MessageInitShape<typeof SeatSchema> {
  return { seatNumber: s.seatNumber, price: BigInt(s.price), state: STATE[s.state] };
}

/** Free seats in `seats`, held and sold ones in `takenSeats`, each list by number. */
export function toListAvailableSeatsInit(concertId: string, date: string, seats: ShowSeat[]): MessageInitShape<typeof ListAvailableSeatsResponseSchema> {
  return {
    concertId,
    date,
    seats: seats.filter((s) => s.state === "FREE").map(toSeatInit),
    takenSeats: seats.filter((s) => s.state !== "FREE").map(toSeatInit),
  };
}
