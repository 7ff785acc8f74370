import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import type { State } from "../state.js";
import { concertArt } from "./art.js";

/** What was typed survives re-renders (a busy button redraws the form). */
let draft = "";

export function renderSignIn(state: State, app: App): HTMLElement {
  const jwt = state.authMode === "jwt";
  const busy = state.busy.has("signin");
  const field = jwt
    ? h("textarea", {
        id: "secret",
        name: "token",
        rows: 5,
        spellcheck: "false",
        autocomplete: "off",
        placeholder: "eyJhbGciOi…",
        "data-testid": "token",
        required: true,
      })
    : h("input", {
        id: "secret",
        name: "username",
        autocomplete: "username",
        placeholder: "e.g. minji",
        maxlength: 64,
        "data-testid": "name",
        required: true,
      });
  field.value = draft;
  field.addEventListener("input", () => (draft = field.value));
  const form = !state.authMode
    ? h(
        "div",
        { class: "card signin-card" },
        h("h2", {}, "Sign in"),
        h("p", { class: "muted" }, "Sign-in opens as soon as this page can reach the box office."),
        h("button", { class: "btn btn-primary btn-block", disabled: true, "data-testid": "signin" }, "Continue"),
        h("button", { class: "btn btn-ghost btn-block", onclick: () => void app.start() }, "Try to connect again"),
      )
    : h(
        "form",
        {
          class: "card signin-card",
          onsubmit: (e: Event) => {
            e.preventDefault();
            void app.signIn(field.value);
          },
        },
        h("h2", {}, "Sign in"),
        h(
          "p",
          { class: "muted" },
          jwt
            ? "Paste the access token your sign-in provider issued for the box office."
            : "Pick the name you book under. It keeps your place in line, your holds and your tickets.",
        ),
        h("label", { for: "secret" }, jwt ? "Access token" : "User name"),
        field,
        h(
          "button",
          { class: "btn btn-primary btn-block", type: "submit", disabled: busy || !state.authMode, "data-testid": "signin" },
          busy ? "Signing in…" : "Continue",
        ),
        h(
          "p",
          { class: "fineprint" },
          icon("shield"),
          jwt
            ? "The token stays in this tab and goes only to the box office, which checks its signature."
            : "Demo mode: the server trusts the name you type. Production servers check a signed access token instead.",
        ),
      );
  return h(
    "div",
    { class: "signin" },
    h(
      "section",
      { class: "hero" },
      h("div", { class: "eyebrow" }, "On sale now"),
      h("h1", {}, "The nights everyone wants. ", h("span", { class: "grad" }, "A fair shot at every seat.")),
      h(
        "ul",
        { class: "features" },
        h(
          "li",
          {},
          icon("users"),
          h("div", {}, h("strong", {}, "A fair waiting room"), h("span", {}, "First come, first served, with your live place in line.")),
        ),
        h(
          "li",
          {},
          icon("clock"),
          h("div", {}, h("strong", {}, "Your seat, held for you"), h("span", {}, "Pick it on the map; nobody else can take it while you pay.")),
        ),
        h("li", {}, icon("wallet"), h("div", {}, h("strong", {}, "One-tap payment"), h("span", {}, "Pay from your prepaid wallet. Never charged twice."))),
      ),
      state.concerts.length
        ? h(
            "div",
            {},
            h("div", { class: "mini-lineup-title" }, `${state.concerts.length} shows on sale`),
            h(
              "div",
              { class: "mini-lineup" },
              state.concerts.map((c) => h("div", { class: "mini", title: `${c.artist}: ${c.title}` }, concertArt(c), h("span", {}, c.title))),
            ),
          )
        : null,
    ),
    form,
  );
}
