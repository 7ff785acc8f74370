import type { Concert } from "@boxoffice/client";
import { h } from "../dom.js";

/** Cover art without images: two hues from the concert id, the artist's name set large. */
export function concertArt(c: Concert, size: "card" | "banner" = "card"): HTMLElement {
  let hash = 0;
  for (const ch of c.concertId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const hue = hash % 360;
  const hue2 = (hue + 40 + ((hash >> 9) % 80)) % 360;
  return h(
    "div",
    {
      class: `art art-${size}`,
      style: `--h1:${hue};--h2:${hue2}`,
      "aria-hidden": "true",
    },
    h("div", { class: "art-glow" }),
    h("div", { class: "art-rings" }),
    h("div", { class: "art-name" }, c.artist),
  );
}
