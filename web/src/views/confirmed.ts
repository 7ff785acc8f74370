import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { showDay, showTime, toDate, won } from "../format.js";
import type { State } from "../state.js";
import { concertArt } from "./art.js";
import { steps } from "./steps.js";

export function renderConfirmed(state: State, app: App): HTMLElement {
  const c = state.confirmed!;
  const r = c.reservation;
  const concert = state.concerts.find((x) => x.concertId === r.concertId);
  const date = state.dates?.find((d) => d.date === r.date);
  const day = showDay(r.date);
  const paidAt = toDate(c.payment.paidAt);
  return h(
    "div",
    { class: "confirmed" },
    steps(4),
    h(
      "div",
      { class: "confirm-head" },
      h("div", { class: "confirm-check" }, icon("check")),
      h("h1", { "data-testid": "confirmed" }, "You're going!"),
      h("p", { class: "muted" }, "Payment received. Your seat is yours."),
    ),
    h(
      "article",
      { class: "ticket" },
      h(
        "div",
        { class: "ticket-main" },
        concert ? concertArt(concert, "banner") : null,
        h(
          "div",
          { class: "ticket-info" },
          h("div", { class: "eyebrow" }, concert?.artist ?? r.concertId),
          h("h2", {}, concert?.title ?? ""),
          h(
            "div",
            { class: "ticket-grid" },
            field("Date", day.long),
            field("Doors", date ? showTime(date.startsAt) : "See venue"),
            field("Venue", concert?.venue ?? ""),
            field("Seat", `${r.seatNumber} (row ${String.fromCharCode(65 + Math.floor((r.seatNumber - 1) / 10))})`, "ticket-seat"),
          ),
        ),
      ),
      h(
        "div",
        { class: "ticket-stub" },
        field("Paid", won(c.payment.amount), "paid-amount"),
        field("Balance left", won(c.balance)),
        field("Booking", r.reservationId.slice(0, 8).toUpperCase()),
        paidAt ? field("Paid at", paidAt.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" })) : null,
      ),
    ),
    h(
      "p",
      { class: "muted small center" },
      "Your booking window was used by this payment. To buy another seat, join the queue again; everyone gets their turn.",
    ),
    h("div", { class: "center" }, h("button", { class: "btn btn-primary", "data-testid": "done", onclick: () => app.home() }, "Back to the lineup")),
  );
}

function field(label: string, value: string, testid?: string): HTMLElement {
  return h("div", { class: "field" }, h("span", {}, label), h("strong", testid ? { "data-testid": testid } : {}, value));
}
