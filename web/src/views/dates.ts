import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { plural, showDay, showTime } from "../format.js";
import type { State } from "../state.js";
import { concertArt } from "./art.js";
import { steps } from "./steps.js";

export function renderDates(state: State, app: App): HTMLElement {
  const concert = state.concerts.find((c) => c.concertId === state.concertId);
  return h(
    "div",
    { class: "dates" },
    steps(1),
    h("button", { class: "link-back", onclick: () => app.back("lineup") }, icon("back"), "All shows"),
    concert
      ? h(
          "section",
          { class: "banner" },
          concertArt(concert, "banner"),
          h(
            "div",
            { class: "banner-text" },
            h("div", { class: "eyebrow" }, concert.artist),
            h("h1", {}, concert.title),
            h("div", { class: "concert-venue" }, icon("pin"), concert.venue),
          ),
        )
      : null,
    h("h2", { class: "step-title" }, icon("calendar"), "Pick a date"),
    state.dates === undefined
      ? h("div", { class: "loading" }, h("div", { class: "spinner" }), "Loading dates…")
      : state.dates.length === 0
        ? h("div", { class: "card empty" }, "Every date of this show is sold out.")
        : h(
            "div",
            { class: "date-list" },
            state.dates.map((d) => {
              const day = showDay(d.date);
              const left = d.availableSeats / Math.max(1, d.totalSeats);
              return h(
                "button",
                { class: "date-card", "data-date": d.date, onclick: () => void app.openSeats(d.date) },
                h("div", { class: "date-badge" }, h("span", {}, day.month), h("strong", {}, day.day)),
                h("div", { class: "date-info" }, h("strong", {}, `${day.weekday} ${day.day} ${day.month} ${day.year}`), h("span", {}, showTime(d.startsAt))),
                h(
                  "div",
                  { class: "date-avail" },
                  h("span", { class: left < 0.2 ? "few" : "" }, left < 0.2 ? `Only ${d.availableSeats} left` : `${plural(d.availableSeats, "seat")} left`),
                  h("div", { class: "meter" }, h("div", { style: `width:${Math.round(left * 100)}%` })),
                ),
                icon("arrow"),
              );
            }),
          ),
  );
}
