import type { ConnectRouter } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConcertService } from "../../../gen/boxoffice/concert/v1/concert_service_pb.js";
import type { Deps } from "../../deps.js";
import { listAvailableDates, listAvailableSeats, listConcerts } from "./concert.service.js";

/** ListAvailableDates and ListAvailableSeats sit behind the queue-token gate; they need no caller identity. */
/** What the concert handlers use. */
export type ConcertRouteDeps = Pick<Deps, "orm" | "clock">;

export function registerConcertRoutes(router: ConnectRouter, deps: ConcertRouteDeps): void {
  router.service(ConcertService, {
    async listConcerts() {
      const concerts = await listConcerts(deps.orm.em.fork());
      return { concerts: concerts.map((c) => ({ concertId: c.id, title: c.title, artist: c.artist, venue: c.venue })) };
    },
    async listAvailableDates(req) {
      const dates = await listAvailableDates(deps.orm.em.fork(), deps.clock, req.concertId);
      return {
        dates: dates.map((d) => ({
          concertId: d.concertId,
          date: d.date,
          startsAt: timestampFromDate(d.startsAt),
          availableSeats: d.availableSeats,
          totalSeats: d.totalSeats,
        })),
      };
    },
    async listAvailableSeats(req) {
      const seats = await listAvailableSeats(deps.orm.em.fork(), deps.clock, req.concertId, req.date);
      return { concertId: req.concertId, date: req.date, seats: seats.map((s) => ({ seatNumber: s.seatNumber, price: BigInt(s.price) })) };
    },
  });
}
