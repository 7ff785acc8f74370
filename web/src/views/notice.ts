import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import type { Notice } from "../state.js";

const ACTIONS: Partial<Record<NonNullable<Notice["next"]>, string>> = { rejoin: "Join the queue again", signin: "Sign in again" };

/** A refusal (or a piece of good news) in plain words, its reason kept for support and tests. */
export function renderNotice(n: Notice, app: App): HTMLElement {
  const retry = n.next === "retry" ? n.retry : undefined;
  const action = retry
    ? h(
        "button",
        {
          class: "btn btn-small",
          onclick: () => {
            app.dismiss();
            retry();
          },
        },
        "Try again",
      )
    : n.next === "rejoin" && app.state.user
      ? h("button", { class: "btn btn-small", "data-testid": "rejoin", onclick: () => void app.joinQueue() }, ACTIONS.rejoin)
      : null;
  return h(
    "div",
    { class: `notice notice-${n.tone}`, role: n.tone === "error" ? "alert" : "status", "data-testid": "notice", "data-reason": n.reason },
    icon(n.tone === "info" ? (n.reason === "ADMITTED" || n.reason === "CHARGED" ? "check" : "info") : "alert", "notice-icon"),
    h("div", { class: "notice-body" }, h("div", { class: "notice-title" }, n.title), n.detail ? h("div", { class: "notice-detail" }, n.detail) : null),
    action,
    h("button", { class: "notice-close", "aria-label": "Dismiss", onclick: () => app.dismiss() }, icon("x")),
  );
}
