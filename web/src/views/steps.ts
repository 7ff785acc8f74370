import { h, icon } from "../dom.js";

const STEPS = ["Waiting room", "Date", "Seat", "Payment"] as const;

/** Where the buyer is in the purchase: done steps ticked, the current one lit. */
export function steps(current: number): HTMLElement {
  return h(
    "ol",
    { class: "steps", "aria-label": "Purchase steps" },
    STEPS.map((label, i) =>
      h(
        "li",
        { class: i < current ? "done" : i === current ? "current" : "", "aria-current": i === current ? "step" : undefined },
        h("span", { class: "steps-dot" }, i < current ? icon("check") : String(i + 1)),
        h("span", { class: "steps-label" }, label),
      ),
    ),
  );
}
