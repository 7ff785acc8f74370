import {
  createBoxofficeClient,
  QueueStatus,
  refusalOf,
  ReservationStatus,
  timestampMs,
  type BoxofficeClient,
  type QueueTicket,
  type Refusal,
} from "@boxoffice/client";
import type { PageConfig } from "./config.js";
import { h, mount } from "./dom.js";
import { countdown, won } from "./format.js";
import { jwtClaims, newKey } from "./ids.js";
import { explain } from "./reasons.js";
import type { Notice, Screen, Show, State, User } from "./state.js";
import { renderConfirmed } from "./views/confirmed.js";
import { renderDates } from "./views/dates.js";
import { renderHeader } from "./views/header.js";
import { renderLineup } from "./views/lineup.js";
import { renderNotice } from "./views/notice.js";
import { renderSeats } from "./views/seats.js";
import { renderSignIn } from "./views/signin.js";
import { renderWaiting } from "./views/waiting.js";

/** user_id accepts these (the proto's rule): checked here so a typo is explained before any call. */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const SEATS_REFRESH_MS = 3_000;
const DATES_REFRESH_MS = 10_000;
const QUEUE_POLL_MS = 2_000;
const SESSION_KEY = "boxoffice.session";
const NEWS_FADE_MS = 8_000;
const GOOD_NEWS = new Set(["ADMITTED", "CHARGED", "RELEASED"]);

export type App = ReturnType<typeof createApp>;

/**
 * The page: one state object, actions that call the API and change it, and a
 * render that redraws the header, the notice and the current screen from it.
 * Timers only touch countdown texts between renders.
 */
export function createApp(root: HTMLElement, config: PageConfig) {
  const state: State = { config, screen: { name: "starting" }, concerts: [], reservations: [], busy: new Set(), live: false };
  const client: BoxofficeClient = createBoxofficeClient({
    baseUrl: config.apiBaseUrl,
    protocol: config.protocol,
    token: () => state.user?.jwt,
  });
  const holdKeys = new Map<string, string>();
  const payKeys = new Map<string, string>();
  let watch: AbortController | undefined;
  let refresh: ReturnType<typeof setInterval> | undefined;

  const header = h("header", { class: "topbar" });
  const notice = h("div", { class: "notice-slot", "aria-live": "polite" });
  const view = h("main", { class: "view" });
  const footer = h("footer", { class: "footer" });
  mount(root, header, h("div", { class: "page" }, notice, view), footer);

  /** The user id a request names: the user in AUTH_MODE=none, "" (the token's subject) with jwt. */
  const named = () => (state.authMode === "none" ? state.user!.id : "");

  function render(): void {
    mount(header, renderHeader(state, app));
    mount(notice, state.notice ? renderNotice(state.notice, app) : null);
    const s = state.screen.name;
    root.dataset.screen = s;
    document.title = TITLES[s];
    mount(
      view,
      s === "starting"
        ? h("div", { class: "loading" }, h("div", { class: "spinner" }), "Opening the box office…")
        : s === "signin"
          ? renderSignIn(state, app)
          : s === "lineup"
            ? renderLineup(state, app)
            : s === "waiting"
              ? renderWaiting(state, app)
              : s === "dates"
                ? renderDates(state, app)
                : s === "seats"
                  ? renderSeats(state, app)
                  : renderConfirmed(state, app),
    );
    mount(
      footer,
      h("span", {}, "© boxoffice"),
      h("span", { class: "dot-sep" }, "·"),
      h("span", { "data-testid": "protocol" }, `API ${config.apiBaseUrl} over ${config.protocol === "grpc-web" ? "gRPC-Web" : "Connect"}`),
    );
    tickCountdowns();
  }

  function go(screen: Screen["name"]): void {
    state.screen = { name: screen } as Screen;
    stopRefresh();
    if (screen === "seats") refresh = setInterval(() => void loadShow(true), SEATS_REFRESH_MS);
    if (screen === "dates") refresh = setInterval(() => void loadDates(true), DATES_REFRESH_MS);
    render();
    window.scrollTo({ top: 0 });
  }

  function stopRefresh(): void {
    if (refresh) clearInterval(refresh);
    refresh = undefined;
  }

  function say(n: Notice | undefined): void {
    state.notice = n;
    mount(notice, n ? renderNotice(n, app) : null);
    // Good news fades; refusals stay until dismissed or replaced.
    if (n && n.tone === "info" && GOOD_NEWS.has(n.reason)) setTimeout(() => state.notice === n && say(undefined), NEWS_FADE_MS);
  }

  /**
   * Shows a failed call in plain words and does what its reason implies:
   * a closed booking window clears the pass, a waiting pass goes back to the
   * waiting room, a taken seat reloads the map, a refused sign-in signs out.
   */
  async function fail(err: unknown, retry?: () => void): Promise<Refusal> {
    const r = refusalOf(err);
    const words = explain(r);
    if (words.reason === "CANCELED") return r;
    say({ ...words, retry: words.next === "retry" ? retry : undefined });
    switch (words.next) {
      case "rejoin":
        endPass();
        render();
        break;
      case "waiting-room":
        if (r.waitingTicket) onTicket(r.waitingTicket);
        go("waiting");
        void watchQueue();
        break;
      case "signin":
        signOut(true);
        break;
      case "pick-seat":
        state.selectedSeat = undefined;
        if (state.hold && words.reason !== "SEAT_UNAVAILABLE") state.hold = undefined;
        await loadShow(true);
        break;
      case "top-up":
        await loadBalance();
        render();
        break;
    }
    return r;
  }

  /** Runs an action once at a time, its buttons disabled meanwhile. */
  async function busy<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (state.busy.has(name)) return undefined;
    state.busy.add(name);
    render();
    try {
      return await fn();
    } finally {
      state.busy.delete(name);
      render();
    }
  }

  // --- starting and signing in -------------------------------------------

  async function start(): Promise<void> {
    render();
    const [mode] = await Promise.all([detectAuthMode(), loadConcerts()]);
    if (!mode) {
      go("signin");
      return;
    }
    state.authMode = mode;
    const saved = readSession();
    if (saved && saved.mode === mode) {
      const ok = await signIn(saved.secret, true);
      if (ok) return;
    }
    go("signin");
  }

  /**
   * AUTH_MODE from config, or asked of the server: GetBalance naming nobody is
   * USER_ID_REQUIRED where callers are trusted and AUTH_TOKEN_MISSING where
   * they must bring a token.
   */
  async function detectAuthMode(): Promise<"none" | "jwt" | undefined> {
    if (config.authMode !== "auto") return config.authMode;
    try {
      await client.wallet.getBalance({});
      return "none";
    } catch (err) {
      const r = refusalOf(err);
      if (r.reason === "USER_ID_REQUIRED") return "none";
      if (r.reason?.startsWith("AUTH_")) return "jwt";
      await fail(err, () => void start());
      return undefined;
    }
  }

  async function loadConcerts(): Promise<void> {
    try {
      state.concerts = (await client.concerts.listConcerts({})).concerts;
    } catch (err) {
      await fail(err, () => void start());
    }
  }

  /** AUTH_MODE=none: `secret` is the user name; jwt: the access token. Checks it with a GetBalance. */
  async function signIn(secret: string, restoring = false): Promise<boolean> {
    const value = secret.trim();
    let user: User;
    if (state.authMode === "none") {
      if (!USER_ID_PATTERN.test(value)) {
        say({
          reason: "USER_NAME_INVALID",
          title: value ? "That user name can't be used." : "Enter a user name to continue.",
          detail: "Use up to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit.",
          tone: "error",
        });
        return false;
      }
      user = { id: value, label: value };
    } else {
      const claims = jwtClaims(value);
      const sub = claims?.sub ?? "";
      user = { id: sub, label: claims?.name || claims?.preferred_username || claims?.email || sub || "Signed in", jwt: value };
    }
    const ok = await busy("signin", async () => {
      state.user = user;
      try {
        const { balance } = await client.wallet.getBalance({ userId: state.authMode === "none" ? user.id : "" });
        state.balance = balance;
        return true;
      } catch (err) {
        state.user = undefined;
        if (!restoring) await fail(err);
        return false;
      }
    });
    if (!ok) return false;
    writeSession(value);
    if (!restoring) say(undefined);
    void loadReservations().then(() => state.screen.name === "lineup" && render());
    go("lineup");
    return true;
  }

  function signOut(keepNotice = false): void {
    stopWatch();
    stopRefresh();
    endPass();
    Object.assign(state, { user: undefined, balance: undefined, hold: undefined, show: undefined, confirmed: undefined, reservations: [] });
    sessionStorage.removeItem(SESSION_KEY);
    if (!keepNotice) say(undefined);
    go("signin");
  }

  function readSession(): { mode: string; secret: string } | undefined {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
      return s && typeof s.secret === "string" ? s : undefined;
    } catch {
      return undefined;
    }
  }
  function writeSession(secret: string): void {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ mode: state.authMode, secret }));
  }

  // --- wallet and reservations -----------------------------------------

  async function loadBalance(): Promise<void> {
    try {
      state.balance = (await client.wallet.getBalance({ userId: named() })).balance;
    } catch {
      /* the balance pill keeps its last value; the action that needed it reports its own failure */
    }
  }

  async function loadReservations(): Promise<void> {
    try {
      state.reservations = (await client.reservations.listReservations({ userId: named(), pageSize: 100 })).reservations;
    } catch {
      /* "your tickets" is a convenience; the seat map marks own seats from it too, and degrades to "taken" */
    }
  }

  async function charge(amount: bigint): Promise<void> {
    await busy("charge", async () => {
      try {
        const res = await client.wallet.chargeBalance({ userId: state.user!.id, amount, idempotencyKey: newKey("topup") });
        state.balance = res.balance;
        say({ reason: "CHARGED", title: `Added ${won(amount)} to your wallet.`, tone: "info" });
      } catch (err) {
        await fail(err, () => void charge(amount));
      }
    });
  }

  // --- the queue ------------------------------------------------------------

  function onTicket(t: QueueTicket | undefined): void {
    if (!t) return;
    state.ticket = t;
    client.queueToken = t.status === QueueStatus.EXPIRED ? undefined : t.token;
    if (t.status === QueueStatus.WAITING && (state.firstPosition === undefined || t.position > state.firstPosition)) state.firstPosition = t.position;
  }

  /** The pass is spent or gone: nothing gated works until the user joins again. */
  function endPass(): void {
    stopWatch();
    state.ticket = undefined;
    state.firstPosition = undefined;
    client.queueToken = undefined;
  }

  const isActive = () => state.ticket?.status === QueueStatus.ACTIVE && timestampMs(state.ticket.expiresAt!) > Date.now();

  /** "Get tickets" on a concert: straight to its dates with a live pass, else into the queue. */
  async function chooseConcert(concertId: string): Promise<void> {
    state.concertId = concertId;
    state.confirmed = undefined;
    if (isActive()) return openDates();
    await joinQueue();
  }

  async function joinQueue(): Promise<void> {
    await busy("join", async () => {
      try {
        const { ticket } = await client.queue.issueToken({ userId: named() });
        state.firstPosition = undefined;
        onTicket(ticket);
        say(undefined);
      } catch (err) {
        await fail(err, () => void joinQueue());
      }
    });
    if (!state.ticket) return;
    if (state.ticket.status === QueueStatus.ACTIVE) return admitted();
    go("waiting");
    void watchQueue();
  }

  function stopWatch(): void {
    watch?.abort();
    watch = undefined;
    state.live = false;
  }

  /**
   * Follows the ticket on a WatchQueueStatus stream until it is ACTIVE;
   * reconnects after a dropped stream (a server restarting ends streams with
   * UNAVAILABLE), and falls back to polling when this pass has too many
   * streams open (other tabs).
   */
  async function watchQueue(): Promise<void> {
    stopWatch();
    const ac = new AbortController();
    watch = ac;
    let failures = 0;
    while (!ac.signal.aborted && state.ticket?.status === QueueStatus.WAITING) {
      try {
        for await (const { ticket } of client.queue.watchQueueStatus({ token: state.ticket.token }, { signal: ac.signal })) {
          failures = 0;
          if (!state.live) state.live = true;
          onTicket(ticket);
          if (ticket?.status !== QueueStatus.WAITING) break;
          if (state.screen.name === "waiting") render();
        }
      } catch (err) {
        if (ac.signal.aborted) return;
        state.live = false;
        const r = refusalOf(err);
        if (r.reason === "QUEUE_STREAMS_EXCEEDED") {
          say({ ...explain(r) });
          return pollQueue(ac.signal);
        }
        if (!r.retryable && !r.unreachable) {
          await fail(err, () => void joinQueue());
          return;
        }
        failures++;
        if (state.screen.name === "waiting") render();
        await sleep(Math.min(8_000, 500 * 2 ** failures), ac.signal);
      }
    }
    if (ac.signal.aborted) return;
    state.live = false;
    afterWait();
  }

  async function pollQueue(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && state.ticket?.status === QueueStatus.WAITING) {
      await sleep(QUEUE_POLL_MS, signal);
      try {
        onTicket((await client.queue.getQueueStatus({ token: state.ticket.token }, { signal })).ticket);
        if (state.screen.name === "waiting") render();
      } catch (err) {
        if (signal.aborted) return;
        if (!refusalOf(err).retryable) return void fail(err, () => void joinQueue());
      }
    }
    if (!signal.aborted) afterWait();
  }

  function afterWait(): void {
    if (state.ticket?.status === QueueStatus.ACTIVE) return void admitted();
    if (state.ticket?.status === QueueStatus.EXPIRED) {
      endPass();
      say({
        reason: "QUEUE_TOKEN_EXPIRED",
        title: "You lost your place in line.",
        detail: "A place is kept while this page stays open. Join the queue again.",
        tone: "warn",
        next: "rejoin",
      });
      go("lineup");
    }
  }

  function admitted(): void {
    if (state.screen.name === "waiting" || !state.notice || state.notice.tone === "info")
      say({ reason: "ADMITTED", title: "It's your turn!", detail: "Pick a date and a seat before your booking window closes.", tone: "info" });
    void openDates();
  }

  // --- dates and seats ------------------------------------------------------

  async function openDates(): Promise<void> {
    state.dates = undefined;
    go("dates");
    await loadDates(false);
  }

  async function loadDates(background: boolean): Promise<void> {
    if (!state.concertId) return;
    try {
      state.dates = (await client.concerts.listAvailableDates({ concertId: state.concertId })).dates;
      if (state.screen.name === "dates") render();
    } catch (err) {
      if (!background || !refusalOf(err).retryable) await fail(err, () => void loadDates(false));
    }
  }

  async function openSeats(date: string): Promise<void> {
    state.date = date;
    state.selectedSeat = undefined;
    if (state.show && (state.show.concertId !== state.concertId || state.show.date !== date)) state.show = undefined;
    if (state.hold && (state.hold.concertId !== state.concertId || state.hold.date !== date)) state.hold = undefined;
    go("seats");
    await loadShow(false);
  }

  /** The seat map's data: free, held and sold seats (ListAvailableSeats) and the user's own holds and purchases (ListReservations). */
  /**
   * `background`: a refresh (a transient failure stays quiet). The user's own
   * reservations are read on the first load and after the user's own changes;
   * refreshes only re-read the seats.
   */
  async function loadShow(background: boolean, withReservations = !background): Promise<void> {
    const concertId = state.concertId;
    const date = state.date;
    if (!concertId || !date) return;
    try {
      const [seats] = await Promise.all([client.concerts.listAvailableSeats({ concertId, date }), withReservations ? loadReservations() : undefined]);
      if (state.concertId !== concertId || state.date !== date) return;
      const prev = state.show?.concertId === concertId && state.show.date === date ? state.show : undefined;
      const show: Show = {
        concertId,
        date,
        total: state.dates?.find((d) => d.date === date)?.totalSeats || prev?.total || 50,
        free: new Map(seats.seats.map((s) => [s.seatNumber, s.price])),
        taken: new Map(seats.takenSeats.map((s) => [s.seatNumber, s.state])),
        prices: new Map(prev?.prices),
        mine: new Map(),
        loadedAt: Date.now(),
      };
      for (const s of [...seats.seats, ...seats.takenSeats]) show.prices.set(s.seatNumber, s.price);
      const now = Date.now();
      for (const r of [...(state.hold ? [state.hold] : []), ...state.reservations]) {
        if (r.concertId !== concertId || r.date !== date) continue;
        const live = r.status === ReservationStatus.CONFIRMED || (r.status === ReservationStatus.HELD && timestampMs(r.holdExpiresAt!) > now);
        if (!live || show.mine.has(r.seatNumber)) continue;
        show.mine.set(r.seatNumber, r);
        show.prices.set(r.seatNumber, r.amount);
      }
      state.show = show;
      // A hold taken earlier (another tab, before a reload) is picked up to check out.
      if (!state.hold) state.hold = [...show.mine.values()].find((r) => r.status === ReservationStatus.HELD);
      else if (!show.mine.has(state.hold.seatNumber) && timestampMs(state.hold.holdExpiresAt!) <= now) state.hold = undefined;
      if (state.selectedSeat !== undefined && !show.free.has(state.selectedSeat)) state.selectedSeat = undefined;
      if (state.screen.name === "seats") render();
    } catch (err) {
      if (!background || !refusalOf(err).retryable) await fail(err, () => void loadShow(false));
    }
  }

  function selectSeat(seat: number): void {
    const mine = state.show?.mine.get(seat);
    if (mine?.status === ReservationStatus.HELD) state.hold = mine;
    else if (state.show?.free.has(seat)) state.selectedSeat = state.selectedSeat === seat ? undefined : seat;
    render();
  }

  async function holdSeat(): Promise<void> {
    const seat = state.selectedSeat;
    const concertId = state.concertId;
    const date = state.date;
    if (seat === undefined || !concertId || !date) return;
    // The same seat asked again (a retry after a lost answer) reuses its key: one hold, never two.
    const slot = `${concertId}/${date}/${seat}`;
    const key = holdKeys.get(slot) ?? newKey("hold");
    holdKeys.set(slot, key);
    await busy("hold", async () => {
      try {
        const { reservation } = await client.reservations.holdSeat({ concertId, date, seatNumber: seat, idempotencyKey: key });
        state.hold = reservation;
        state.selectedSeat = undefined;
        holdKeys.delete(slot);
        say(undefined);
        await Promise.all([loadShow(true, true), loadBalance()]);
      } catch (err) {
        const r = await fail(err, () => void holdSeat());
        if (!r.retryable) holdKeys.delete(slot);
      }
    });
  }

  async function releaseHold(): Promise<void> {
    const hold = state.hold;
    if (!hold) return;
    await busy("release", async () => {
      try {
        await client.reservations.cancelHold({ reservationId: hold.reservationId });
        state.hold = undefined;
        say({ reason: "RELEASED", title: `Seat ${hold.seatNumber} is released.`, tone: "info" });
        await loadShow(true, true);
      } catch (err) {
        await fail(err, () => void releaseHold());
      }
    });
  }

  async function pay(): Promise<void> {
    const hold = state.hold;
    if (!hold) return;
    // One key per reservation: paying again after a lost answer returns the first payment.
    const key = payKeys.get(hold.reservationId) ?? newKey("pay");
    payKeys.set(hold.reservationId, key);
    await busy("pay", async () => {
      try {
        const res = await client.reservations.payReservation({ reservationId: hold.reservationId, idempotencyKey: key });
        state.confirmed = { reservation: res.reservation!, payment: res.payment!, balance: res.balance };
        state.balance = res.balance;
        state.hold = undefined;
        // The payment spent the queue pass.
        endPass();
        say(undefined);
        go("confirmed");
        void loadReservations();
      } catch (err) {
        await fail(err, () => void pay());
      }
    });
  }

  // --- countdowns -----------------------------------------------------------

  /** Rewrites every [data-deadline] text; fires what a deadline passing means. */
  function tickCountdowns(): void {
    const now = Date.now();
    for (const el of root.querySelectorAll<HTMLElement>("[data-deadline]")) {
      el.textContent = countdown(Number(el.dataset.deadline), now);
      el.classList.toggle("urgent", Number(el.dataset.deadline) - now < 60_000);
    }
    if (state.hold?.status === ReservationStatus.HELD && timestampMs(state.hold.holdExpiresAt!) <= now) {
      const seat = state.hold.seatNumber;
      state.hold = undefined;
      say({
        reason: "HOLD_EXPIRED",
        title: `Your hold on seat ${seat} ran out.`,
        detail: "The seat went back on sale. Hold it again if it's still free.",
        tone: "warn",
      });
      void loadShow(true);
    }
    if (state.ticket?.status === QueueStatus.ACTIVE && timestampMs(state.ticket.expiresAt!) <= now) {
      endPass();
      say({ ...explain({ reason: "QUEUE_TOKEN_EXPIRED" } as Refusal) });
      render();
    }
  }
  setInterval(tickCountdowns, 250);

  const app = {
    state,
    start,
    signIn,
    signOut,
    chooseConcert,
    joinQueue,
    openDates,
    openSeats,
    selectSeat,
    holdSeat,
    releaseHold,
    pay,
    charge,
    refreshBalance: async () => {
      await loadBalance();
      render();
    },
    dismiss: () => say(undefined),
    home: () => {
      state.confirmed = undefined;
      void loadReservations().then(() => state.screen.name === "lineup" && render());
      go(state.user ? "lineup" : "signin");
    },
    back: (to: "lineup" | "dates") => (to === "dates" ? void openDates() : go("lineup")),
    isActive,
  };
  return app;
}

const TITLES: Record<Screen["name"], string> = {
  starting: "boxoffice",
  signin: "Sign in · boxoffice",
  lineup: "On sale now · boxoffice",
  waiting: "In line · boxoffice",
  dates: "Pick a date · boxoffice",
  seats: "Pick a seat · boxoffice",
  confirmed: "You're going · boxoffice",
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
