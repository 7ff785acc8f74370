import type { ConnectRouter } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { ConcertService } from "../../../gen/boxoffice/concert/v1/concert_service_pb.js";
import type { Clock } from "../../platform/clock.js";
import type { CatalogCache } from "./catalog-cache.js";
import { toConcertDateInit, toConcertInit, toListAvailableSeatsInit } from "./concert.mapping.js";
import { listAvailableDates, listConcerts, listShowSeats } from "./concert.service.js";

/** What the concert handlers use, built by the composition root. */
export interface ConcertRouteDeps {
  /** A fresh identity map per call. */
  em: () => EntityManager;
  clock: Clock;
  /** The concert list and dates, up to CATALOG_CACHE_TTL old (with CATALOG_CACHE_TTL=0, every call reads the database). */
  catalog: CatalogCache;
}

/** ListAvailableDates and ListAvailableSeats sit behind the queue-token gate; they need no caller identity. */
export function registerConcertRoutes(router: ConnectRouter, deps: ConcertRouteDeps): void {
  const { em } = deps;
  const concerts = () => listConcerts(em());
  const dates = (concertId: string) => () => listAvailableDates(em(), deps.clock, concertId);
  router.service(ConcertService, {
    async listConcerts() {
      const list = await deps.catalog.concerts.get("all", concerts);
      return { concerts: list.map(toConcertInit) };
    },
    async listAvailableDates(req) {
      const list = await deps.catalog.dates.get(req.concertId, dates(req.concertId));
      return { dates: list.map(toConcertDateInit) };
    },
    async listAvailableSeats(req) {
      const seats = await listShowSeats(em(), deps.clock, req.concertId, req.date);
      return toListAvailableSeatsInit(req.concertId, req.date, seats);
    },
  });
}
