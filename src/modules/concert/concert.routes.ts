import type { ConnectRouter } from "@connectrpc/connect";
import { ConcertService } from "../../../gen/boxoffice/concert/v1/concert_service_pb.js";
import type { Deps } from "../../deps.js";
import { toConcertDateInit, toConcertInit, toListAvailableSeatsInit } from "./concert.mapping.js";
import { listAvailableDates, listConcerts, listShowSeats } from "./concert.service.js";

/**
 * What the concert handlers use. Without `catalog`, the concert list and the
 * dates are read from the database on every call, as with CATALOG_CACHE_TTL=0.
 */
export type ConcertRouteDeps = Pick<Deps, "orm" | "clock"> & Partial<Pick<Deps, "catalog">>;

/** ListAvailableDates and ListAvailableSeats sit behind the queue-token gate; they need no caller identity. */
export function registerConcertRoutes(router: ConnectRouter, deps: ConcertRouteDeps): void {
  const em = () => deps.orm.em.fork();
  const concerts = () => listConcerts(em());
  const dates = (concertId: string) => () => listAvailableDates(em(), deps.clock, concertId);
  router.service(ConcertService, {
    async listConcerts() {
      const list = await (deps.catalog ? deps.catalog.concerts.get("all", concerts) : concerts());
      return { concerts: list.map(toConcertInit) };
    },
    async listAvailableDates(req) {
      const list = await (deps.catalog ? deps.catalog.dates.get(req.concertId, dates(req.concertId)) : dates(req.concertId)());
      return { dates: list.map(toConcertDateInit) };
    },
    async listAvailableSeats(req) {
      const seats = await listShowSeats(em(), deps.clock, req.concertId, req.date);
      return toListAvailableSeatsInit(req.concertId, req.date, seats);
    },
  });
}
