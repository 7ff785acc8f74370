import { QueueStatus } from "@boxoffice/client";
import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { durationMs, waitWords } from "../format.js";
import type { State } from "../state.js";
import { concertArt } from "./art.js";
import { steps } from "./steps.js";

export function renderWaiting(state: State, app: App): HTMLElement {
  const t = state.ticket;
  const concert = state.concerts.find((c) => c.concertId === state.concertId);
  const ahead = t?.status === QueueStatus.WAITING ? t.position : 0n;
  const first = state.firstPosition && state.firstPosition > 0n ? state.firstPosition : 1n;
  const done = t?.status === QueueStatus.WAITING ? Math.max(4, Math.round(100 * (1 - Number(ahead) / Number(first + 1n)))) : 100;
  const card = h(
    "section",
    { class: "card waiting-card" },
    h(
      "div",
      { class: `live ${state.live ? "on" : ""}`, "data-testid": "live" },
      h("span", { class: "live-dot" }),
      state.live ? "Live: updates as the line moves" : "Reconnecting…",
    ),
    h("div", { class: "eyebrow" }, "Waiting room"),
    h("h1", {}, ahead === 0n ? "You're next." : "You're in line."),
    h(
      "div",
      { class: "position" },
      h("div", { class: "position-number", "data-testid": "position" }, String(ahead)),
      h("div", { class: "position-label" }, ahead === 1n ? "person ahead of you" : "people ahead of you"),
    ),
    h(
      "div",
      { class: "progress", role: "progressbar", "aria-label": "Progress through the line", "aria-valuenow": done, "aria-valuemin": 0, "aria-valuemax": 100 },
      h("div", { class: "progress-bar", style: `width:${done}%` }),
    ),
    h(
      "div",
      { class: "wait-facts" },
      h("div", {}, icon("clock"), h("span", {}, "Estimated wait"), h("strong", { "data-testid": "estimate" }, waitWords(durationMs(t?.estimatedWait)))),
      h("div", {}, icon("shield"), h("span", {}, "Keep this tab open to keep your place.")),
    ),
    h("p", { class: "muted small" }, "When it's your turn you get a short booking window to pick a seat and pay. We'll take you straight to the dates."),
  );
  const aside = concert
    ? h(
        "aside",
        { class: "card waiting-aside" },
        concertArt(concert),
        h(
          "div",
          { class: "concert-body" },
          h("div", { class: "concert-artist" }, concert.artist),
          h("h3", {}, concert.title),
          h("div", { class: "concert-venue" }, icon("pin"), concert.venue),
        ),
        h("button", { class: "btn btn-ghost btn-block", onclick: () => app.back("lineup") }, icon("back"), "Back to the lineup"),
      )
    : null;
  return h("div", {}, steps(0), h("div", { class: "waiting" }, card, aside));
}
