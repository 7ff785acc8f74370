import { ReservationStatus, timestampMs, type Reservation } from "@boxoffice/client";
import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { showDay, won } from "../format.js";
import type { State } from "../state.js";
import { concertArt } from "./art.js";

export function renderLineup(state: State, app: App): HTMLElement {
  const joining = state.busy.has("join");
  const active = app.isActive();
  const mine = state.reservations.filter(
    (r) => r.status === ReservationStatus.CONFIRMED || (r.status === ReservationStatus.HELD && timestampMs(r.holdExpiresAt!) > Date.now()),
  );
  return h(
    "div",
    { class: "lineup" },
    h(
      "div",
      { class: "section-head" },
      h("div", {}, h("div", { class: "eyebrow" }, "On sale now"), h("h1", {}, `Hi ${state.user?.label}, who are you seeing?`)),
      h(
        "p",
        { class: "muted" },
        active ? "You're through the waiting room: pick a show." : "Choose a show. You'll join a short waiting room first, so everyone gets a fair turn.",
      ),
    ),
    h(
      "div",
      { class: "grid-concerts" },
      state.concerts.map((c) =>
        h(
          "article",
          { class: "concert-card", "data-concert": c.concertId },
          concertArt(c),
          h(
            "div",
            { class: "concert-body" },
            h("div", { class: "concert-artist" }, c.artist),
            h("h3", {}, c.title),
            h("div", { class: "concert-venue" }, icon("pin"), c.venue),
            h(
              "button",
              {
                class: "btn btn-primary btn-block",
                disabled: joining,
                "data-testid": `get-tickets-${c.concertId}`,
                onclick: () => void app.chooseConcert(c.concertId),
              },
              joining && state.concertId === c.concertId ? "Joining the queue…" : active ? "Choose a date" : "Get tickets",
              icon("arrow"),
            ),
          ),
        ),
      ),
    ),
    mine.length
      ? h(
          "section",
          { class: "my-tickets" },
          h("h2", {}, "Your tickets"),
          h(
            "div",
            { class: "ticket-list" },
            mine.map((r) => ticketRow(state, r)),
          ),
        )
      : null,
  );
}

function ticketRow(state: State, r: Reservation): HTMLElement {
  const concert = state.concerts.find((c) => c.concertId === r.concertId);
  const held = r.status === ReservationStatus.HELD;
  return h(
    "div",
    { class: "ticket-row", "data-testid": "my-ticket" },
    h("div", { class: "ticket-date" }, h("strong", {}, showDay(r.date).day), h("span", {}, showDay(r.date).month)),
    h("div", { class: "ticket-what" }, h("strong", {}, concert?.artist ?? r.concertId), h("span", {}, `${concert?.title ?? ""} · Seat ${r.seatNumber}`)),
    h("div", { class: "ticket-amount" }, won(r.amount)),
    h("span", { class: `badge ${held ? "badge-held" : "badge-ok"}` }, held ? "Held, unpaid" : "Paid"),
  );
}
