import { QueueStatus, timestampMs } from "@boxoffice/client";
import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { won } from "../format.js";
import type { State } from "../state.js";

export function renderHeader(state: State, app: App): HTMLElement {
  const t = state.ticket;
  const pass =
    t?.status === QueueStatus.ACTIVE
      ? h(
          "div",
          { class: "pill pill-live", "data-testid": "booking-window", title: "Your booking window: pick and pay before it closes" },
          icon("clock"),
          h("span", {}, "Booking window"),
          h("strong", { "data-deadline": timestampMs(t.expiresAt!) }),
        )
      : t?.status === QueueStatus.WAITING
        ? h("div", { class: "pill" }, icon("users"), h("span", {}, "In line"), h("strong", {}, t.position === 0n ? "you're next" : `${t.position} ahead`))
        : null;
  return h(
    "div",
    { class: "topbar-inner" },
    h(
      "a",
      {
        class: "brand",
        href: "#",
        onclick: (e: Event) => {
          e.preventDefault();
          app.home();
        },
      },
      icon("ticket", "brand-mark"),
      h("span", {}, "boxoffice"),
    ),
    state.user
      ? h(
          "div",
          { class: "topbar-right" },
          pass,
          h(
            "div",
            { class: "pill", "data-testid": "balance", title: "Your prepaid balance" },
            icon("wallet"),
            h("strong", {}, state.balance === undefined ? "…" : won(state.balance)),
          ),
          h(
            "div",
            { class: "user" },
            h("span", { class: "avatar" }, state.user.label.slice(0, 1).toUpperCase()),
            h("span", { class: "user-name", "data-testid": "user" }, state.user.label),
          ),
          h("button", { class: "btn btn-ghost btn-small", onclick: () => app.signOut() }, "Sign out"),
        )
      : null,
  );
}
