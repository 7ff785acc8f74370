import { ReservationStatus, SeatState, timestampMs, type Reservation } from "@boxoffice/client";
import type { App } from "../app.js";
import { h, icon } from "../dom.js";
import { showDay, showTime, won } from "../format.js";
import type { Show, State } from "../state.js";
import { steps } from "./steps.js";

const PER_ROW = 10;
const rowOf = (seat: number) => String.fromCharCode(65 + Math.floor((seat - 1) / PER_ROW));

/**
 * How a seat is drawn: free (by price band), held by someone (it may come
 * back on sale when the hold lapses), sold, or the user's own hold or ticket.
 * "taken" only for a seat the server listed in neither list (it should not).
 */
type MapState = "free" | "held" | "sold" | "held-by-you" | "yours" | "taken";

function seatState(show: Show, seat: number): MapState {
  const mine = show.mine.get(seat);
  if (mine) return mine.status === ReservationStatus.CONFIRMED ? "yours" : "held-by-you";
  if (show.free.has(seat)) return "free";
  const taken = show.taken.get(seat);
  return taken === SeatState.HELD ? "held" : taken === SeatState.SOLD ? "sold" : "taken";
}

const LABELS: Record<Exclude<MapState, "free">, string> = {
  held: "held by someone; it may come back on sale",
  sold: "sold",
  "held-by-you": "held for you",
  yours: "yours",
  taken: "taken",
};

/** Price bands, dearest first; each gets a colour. */
function tiers(show: Show): bigint[] {
  return [...new Set(show.prices.values())].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
}

export function renderSeats(state: State, app: App): HTMLElement {
  const concert = state.concerts.find((c) => c.concertId === state.concertId);
  const date = state.dates?.find((d) => d.date === state.date);
  const day = state.date ? showDay(state.date) : undefined;
  const show = state.show;
  return h(
    "div",
    { class: "seats" },
    steps(state.hold ? 3 : 2),
    h("button", { class: "link-back", onclick: () => app.back("dates") }, icon("back"), "Dates"),
    h(
      "div",
      { class: "seats-head" },
      h(
        "div",
        {},
        h("div", { class: "eyebrow" }, concert?.artist ?? ""),
        h("h1", {}, concert?.title ?? ""),
        h(
          "div",
          { class: "meta" },
          icon("calendar"),
          day ? `${day.long}${date ? `, ${showTime(date.startsAt)}` : ""}` : "",
          h("span", { class: "dot-sep" }, "·"),
          icon("pin"),
          concert?.venue ?? "",
        ),
      ),
    ),
    h(
      "div",
      { class: "seats-layout" },
      h(
        "section",
        { class: "card map-card" },
        show ? seatMap(show, state.selectedSeat, app) : h("div", { class: "loading" }, h("div", { class: "spinner" }), "Loading seats…"),
      ),
      h("aside", { class: "card panel", "data-testid": "panel" }, panel(state, app)),
    ),
  );
}

function seatMap(show: Show, selected: number | undefined, app: App): HTMLElement {
  const bands = tiers(show);
  const rows: HTMLElement[] = [];
  for (let first = 1; first <= show.total; first += PER_ROW) {
    const seats: HTMLElement[] = [];
    for (let n = first; n < first + PER_ROW && n <= show.total; n++) {
      const st = seatState(show, n);
      const price = show.prices.get(n);
      const band = price === undefined ? -1 : bands.indexOf(price);
      const label = st === "free" ? `Seat ${n}, row ${rowOf(n)}, ${won(price!)}` : `Seat ${n}, ${LABELS[st]}`;
      seats.push(
        h(
          "button",
          {
            class: `seat seat-${st} band-${band % 4} ${selected === n ? "selected" : ""}`,
            "data-seat": n,
            "data-state": st,
            title: label,
            "aria-label": label,
            "aria-pressed": selected === n ? "true" : "false",
            disabled: st !== "free" && st !== "held-by-you",
            onclick: () => app.selectSeat(n),
          },
          st === "yours" || st === "held-by-you" ? icon("check", "seat-icon") : String(n),
        ),
      );
      if (n - first === PER_ROW / 2 - 1) seats.push(h("span", { class: "aisle" }));
    }
    rows.push(h("div", { class: "seat-row" }, h("span", { class: "row-label" }, rowOf(first)), ...seats, h("span", { class: "row-label" }, rowOf(first))));
  }
  const free = show.free.size;
  return h(
    "div",
    { class: "map" },
    h("div", { class: "stage" }, "STAGE"),
    h("div", { class: "seat-rows", "data-testid": "seat-map" }, rows),
    h(
      "div",
      { class: "legend" },
      bands.map((p, i) => h("span", { class: "legend-item" }, h("i", { class: `seat-dot seat-free band-${i % 4}` }), won(p))),
      h("span", { class: "legend-item", "data-testid": "legend-held" }, h("i", { class: "seat-dot seat-held" }), "Held by someone"),
      h("span", { class: "legend-item", "data-testid": "legend-sold" }, h("i", { class: "seat-dot seat-sold" }), "Sold"),
      h("span", { class: "legend-item" }, h("i", { class: "seat-dot seat-held-by-you" }), "Held for you"),
      h("span", { class: "legend-item" }, h("i", { class: "seat-dot seat-yours" }), "Yours"),
    ),
    h(
      "div",
      { class: "map-foot" },
      h("span", { "data-testid": "free-count" }, `${free} of ${show.total} seats free`),
      h("span", { class: "muted" }, "Updates every few seconds"),
    ),
  );
}

function panel(state: State, app: App): (HTMLElement | null)[] {
  if (state.hold) return checkout(state, state.hold, app);
  const seat = state.selectedSeat;
  const price = seat === undefined ? undefined : state.show?.free.get(seat);
  if (seat !== undefined && price !== undefined) {
    const busy = state.busy.has("hold");
    return [
      h("div", { class: "panel-eyebrow" }, "Your pick"),
      h("div", { class: "seat-big" }, h("span", { class: "seat-big-num" }, `Seat ${seat}`), h("span", { class: "muted" }, `Row ${rowOf(seat)}`)),
      h("div", { class: "price-big", "data-testid": "price" }, won(price)),
      h(
        "button",
        { class: "btn btn-primary btn-block", "data-testid": "hold", disabled: busy, onclick: () => void app.holdSeat() },
        busy ? "Holding…" : `Hold seat ${seat}`,
      ),
      h("p", { class: "muted small" }, "Holding takes the seat off sale for a few minutes while you pay. Nobody else can take it meanwhile."),
    ];
  }
  return [
    h("div", { class: "panel-eyebrow" }, "No seat picked yet"),
    h("h3", {}, "Tap a free seat on the map"),
    h(
      "p",
      { class: "muted small" },
      "Colours show price bands. Striped seats are held by someone paying right now and may come back on sale; crossed-out ones are sold.",
    ),
    state.balance !== undefined ? h("div", { class: "kv" }, h("span", {}, "Your balance"), h("strong", {}, won(state.balance))) : null,
  ];
}

function checkout(state: State, hold: Reservation, app: App): (HTMLElement | null)[] {
  const balance = state.balance;
  const short = balance !== undefined && balance < hold.amount ? hold.amount - balance : 0n;
  const paying = state.busy.has("pay");
  return [
    h(
      "div",
      { class: "hold-timer", "data-testid": "hold-timer" },
      icon("clock"),
      h("span", {}, "Held for you for"),
      h("strong", { "data-deadline": timestampMs(hold.holdExpiresAt!) }),
    ),
    h(
      "div",
      { class: "seat-big" },
      h("span", { class: "seat-big-num", "data-testid": "held-seat" }, `Seat ${hold.seatNumber}`),
      h("span", { class: "muted" }, `Row ${rowOf(hold.seatNumber)}`),
    ),
    h("div", { class: "kv" }, h("span", {}, "Price"), h("strong", { "data-testid": "amount" }, won(hold.amount))),
    h("div", { class: "kv" }, h("span", {}, "Your balance"), h("strong", {}, balance === undefined ? "…" : won(balance))),
    short > 0n
      ? topUp(state, short, app)
      : h("div", { class: "kv kv-after" }, h("span", {}, "After payment"), h("strong", {}, balance === undefined ? "…" : won(balance - hold.amount))),
    h(
      "button",
      { class: "btn btn-primary btn-block btn-pay", "data-testid": "pay", disabled: paying, onclick: () => void app.pay() },
      paying ? "Paying…" : `Pay ${won(hold.amount)}`,
    ),
    h(
      "button",
      { class: "btn btn-ghost btn-block", "data-testid": "release", disabled: state.busy.has("release"), onclick: () => void app.releaseHold() },
      "Release this seat",
    ),
  ];
}

function topUp(state: State, short: bigint, app: App): HTMLElement {
  if (state.authMode === "jwt")
    return h(
      "div",
      { class: "shortfall", "data-testid": "topup-info" },
      h("strong", {}, `You need ${won(short)} more.`),
      h(
        "p",
        {},
        "Top-ups are made with the payment provider, which credits your wallet here; this page can't add money itself. Once it's done, refresh your balance.",
      ),
      h("button", { class: "btn btn-small", onclick: () => void app.refreshBalance() }, "Refresh balance"),
    );
  const busy = state.busy.has("charge");
  const round = ((short + 9_999n) / 10_000n) * 10_000n;
  const amounts = [...new Set([round, 100_000n, 300_000n].filter((a) => a >= short))].slice(0, 3);
  return h(
    "div",
    { class: "shortfall", "data-testid": "topup" },
    h("strong", {}, `You need ${won(short)} more.`),
    h("p", {}, "Add funds to your wallet (demo: no real money moves)."),
    h(
      "div",
      { class: "chips" },
      amounts.map((a) => h("button", { class: "chip", disabled: busy, "data-testid": `charge-${a}`, onclick: () => void app.charge(a) }, `+ ${won(a)}`)),
    ),
  );
}
