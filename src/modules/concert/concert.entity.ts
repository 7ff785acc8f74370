import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

export const Concert = defineEntity({
  name: "Concert",
  tableName: "concert",
  properties: {
    id: p.string().primary().length(64),
    title: p.string().length(200),
    artist: p.string().length(200),
    venue: p.string().length(200),
  },
});
export type Concert = InferEntity<typeof Concert>;
