import type { EntityManager } from "@mikro-orm/postgresql";
import { Concert } from "./concert.entity.js";

/** Every concert, ordered by id. */
export async function listConcerts(em: EntityManager): Promise<Concert[]> {
  return em.find(Concert, {}, { orderBy: { id: "asc" } });
}
