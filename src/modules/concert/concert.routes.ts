import type { ConnectRouter } from "@connectrpc/connect";
import { ConcertService } from "../../../gen/boxoffice/concert/v1/concert_service_pb.js";
import type { Deps } from "../../deps.js";
import { listConcerts } from "./concert.service.js";

export function registerConcertRoutes(router: ConnectRouter, deps: Deps): void {
  router.service(ConcertService, {
    async listConcerts() {
      const concerts = await listConcerts(deps.orm.em.fork());
      return { concerts: concerts.map((c) => ({ concertId: c.id, title: c.title, artist: c.artist, venue: c.venue })) };
    },
  });
}
