/**
 * The on-sale page in Chromium against the real server, once over Connect and
 * once over gRPC-Web: sign in, wait in line with three people ahead and watch
 * the position fall on the WatchQueueStatus stream, pick a concert and date,
 * see seats someone else holds and bought as held and sold, hold a seat (countdown), be refused
 * for want of balance, charge, pay, see the confirmation; then check the
 * database agrees and that every call spoke the protocol it should.
 *
 * The admission loop is off: the test admits people with queue.tick(), so the
 * waiting room is seen for as long as the test needs.
 */
import type { Page } from "playwright-core";
import { createBoxofficeClient, QueueStatus, ReservationStatus, type Protocol } from "../../packages/client/src";
import { checkInvariants } from "../../src/modules/payment/invariants";
import {
  BROWSER_TEST_TIMEOUT_MS,
  builtPage,
  launchChromium,
  noticeFor,
  openSeatMap,
  recordApiCalls,
  screenshot,
  seatState,
  signIn,
  startStack,
  waitForSeat,
  watchErrors,
  type Stack,
  type TestBrowser,
} from "./support";

jest.setTimeout(BROWSER_TEST_TIMEOUT_MS);

const CONCERT = "iu-golden-hour-2027";
/** One show per run, so the runs share a server without sharing seats. */
const DATES: Record<Protocol | "reload", string> = { connect: "2027-03-06", "grpc-web": "2027-03-07", reload: "2027-03-13" };

let page: { dir: string; remove(): void };
let chromium: TestBrowser;
let stack: Stack;

beforeAll(async () => {
  page = await builtPage();
  chromium = await launchChromium();
  stack = await startStack(page.dir, {
    // One admission per tick, position updates on every tick.
    env: { QUEUE_ADMIT_PER_SECOND: "4", QUEUE_TICK: "250ms", QUEUE_STREAM_POSITION_INTERVAL: "0" },
    overrides: { startQueue: false },
  });
});
afterAll(async () => {
  await stack?.stop();
  await chromium?.close();
  page?.remove();
});

/** Runs admission rounds until `done` holds on the page (each round admits one person). */
async function admitUntil(p: Page, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error("the page did not get there within 20 s of admission rounds");
    await stack.api.deps.queue.tick();
    await p.waitForTimeout(150);
  }
}

const EXPECTED_CONTENT_TYPES: Record<Protocol, RegExp> = {
  connect: /^application\/(json|connect\+json)/,
  "grpc-web": /^application\/grpc-web\+proto/,
};

describe.each<Protocol>(["connect", "grpc-web"])("the on-sale page over %s", (protocol) => {
  test("sign in, wait in line, pick a seat, hold, top up, pay, confirmation", async () => {
    const shots = protocol === "connect";
    const DATE = DATES[protocol];
    const user = `minji-${protocol}`;
    const fans = [1, 2, 3].map((i) => `fan-${protocol}-${i}`);
    // Others, in Node, with the same client package the page uses.
    const others = createBoxofficeClient({ baseUrl: stack.api.baseUrl, protocol });
    const tickets = [];
    for (const f of fans) tickets.push((await others.queue.issueToken({ userId: f })).ticket!);

    const context = await chromium.context();
    const p = await context.newPage();
    const errors = watchErrors(p);
    const calls = recordApiCalls(p, stack.api.baseUrl);
    try {
      await p.goto(`${stack.url}?protocol=${protocol}`);
      await p.locator("[data-testid=name]").fill(user);
      if (shots) await screenshot(p, "01-sign-in");
      await p.locator("[data-testid=signin]").click();
      await p.locator(".concert-card").first().waitFor();
      expect(await p.locator("[data-testid=user]").innerText()).toBe(user);
      expect(await p.locator("[data-testid=protocol]").innerText()).toContain(protocol === "connect" ? "Connect" : "gRPC-Web");
      if (shots) await screenshot(p, "02-lineup");

      // The waiting room: three ahead, live on the stream.
      await p.locator(`[data-testid=get-tickets-${CONCERT}]`).click();
      const position = p.locator("[data-testid=position]");
      await position.waitFor();
      expect(await position.innerText()).toBe("3");
      await p.locator("[data-testid=live].on").waitFor();
      await admitUntil(p, async () => (await position.innerText()) === "2");
      expect(await p.locator("[data-testid=estimate]").innerText()).toMatch(/seconds|minute|moment|working/);
      if (shots) await screenshot(p, "03-waiting-room");
      await admitUntil(p, async () => (await p.locator(".date-card").count()) > 0);
      expect(await noticeFor(p, "ADMITTED")).toContain("It's your turn");
      await p.locator("[data-testid=booking-window]").waitFor();
      if (shots) await screenshot(p, "04-dates");

      // Before the map opens someone else holds seat 3 and buys seat 4: one shows as held, the other as sold.
      const fan = createBoxofficeClient({ baseUrl: stack.api.baseUrl, protocol });
      fan.queueToken = tickets[0].token;
      expect((await fan.queue.getQueueStatus({ token: tickets[0].token })).ticket?.status).toBe(QueueStatus.ACTIVE);
      await fan.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 3 });
      const bought = (await fan.reservations.holdSeat({ concertId: CONCERT, date: DATE, seatNumber: 4 })).reservation!;
      await fan.wallet.chargeBalance({ userId: fans[0], amount: bought.amount });
      await fan.reservations.payReservation({ reservationId: bought.reservationId });

      await p.locator(`.date-card[data-date="${DATE}"]`).click();
      await p.locator("[data-testid=seat-map] [data-seat='12']").waitFor();
      expect(await seatState(p, 3)).toBe("held");
      expect(await seatState(p, 4)).toBe("sold");
      expect(await seatState(p, 12)).toBe("free");
      expect(await p.locator("[data-testid=seat-map] [data-seat='3']").isDisabled()).toBe(true);
      expect(await p.locator("[data-testid=seat-map] [data-seat='4']").getAttribute("aria-label")).toBe("Seat 4, sold");
      // Three looks, three legend entries: a price band, held, sold.
      expect(await p.locator("[data-testid=legend-held]").innerText()).toBe("Held by someone");
      expect(await p.locator("[data-testid=legend-sold]").innerText()).toBe("Sold");
      const looks = await Promise.all(
        [3, 4, 12].map((n) =>
          p.locator(`[data-testid=seat-map] [data-seat='${n}']`).evaluate((e) => {
            const style = e.ownerDocument.defaultView!.getComputedStyle(e);
            return `${style.backgroundImage} ${style.backgroundColor}`;
          }),
        ),
      );
      expect(new Set(looks).size).toBe(3);
      expect(await p.locator("[data-testid=free-count]").innerText()).toBe("48 of 50 seats free");

      await p.locator("[data-seat='12']").click();
      expect(await p.locator("[data-testid=price]").innerText()).toBe("₩143,000");
      if (shots) await screenshot(p, "05-seat-map");
      await p.locator("[data-testid=hold]").click();
      const timer = p.locator("[data-testid=hold-timer] strong");
      await timer.waitFor();
      expect(await p.locator("[data-testid=held-seat]").innerText()).toBe("Seat 12");
      await waitForSeat(p, 12, "held-by-you");
      const first = await timer.innerText();
      expect(first).toMatch(/^[45]:\d\d$/);
      // It counts down.
      await p.locator("[data-testid=hold-timer] strong").filter({ hasNotText: first }).waitFor();

      // Paying with an empty wallet is refused, in plain words, and the hold stays.
      await p.locator("[data-testid=pay]").click();
      const refusal = await noticeFor(p, "INSUFFICIENT_BALANCE");
      expect(refusal).toContain("Your balance doesn't cover this seat.");
      expect(refusal).toContain("the seat costs ₩143,000");
      if (shots) await screenshot(p, "06-refused-insufficient-balance");

      await p.locator("[data-testid=topup] .chip").first().click();
      expect(await noticeFor(p, "CHARGED")).toContain("Added ₩150,000");
      await p.locator("[data-testid=balance]", { hasText: "₩150,000" }).waitFor();
      await p.locator("[data-testid=pay]").click();
      await p.locator("[data-testid=confirmed]").waitFor();
      expect(await p.locator("[data-testid=paid-amount]").innerText()).toBe("₩143,000");
      expect(await p.locator("[data-testid=ticket-seat]").innerText()).toContain("12");
      expect(await p.locator("[data-testid=balance]").innerText()).toContain("₩7,000");
      // The payment spent the queue pass.
      expect(await p.locator("[data-testid=booking-window]").count()).toBe(0);
      if (shots) await screenshot(p, "07-confirmation");

      await p.locator("[data-testid=done]").click();
      await p.locator("[data-testid=my-ticket]").first().waitFor();
      expect(await p.locator("[data-testid=my-ticket]").innerText()).toContain("Seat 12");

      // What the server holds agrees with the page.
      const mine = await others.reservations.listReservations({ userId: user });
      expect(mine.reservations.map((r) => [r.seatNumber, r.status])).toEqual([[12, ReservationStatus.CONFIRMED]]);
      expect((await others.wallet.getBalance({ userId: user })).balance).toBe(7_000n);
      expect(await checkInvariants(stack.api.deps.orm.em.fork())).toEqual([]);

      // Every call went over the protocol asked for, the queue on a stream.
      const used = new Set(calls.map((c) => c.path.split("/").pop()));
      for (const rpc of [
        "ListConcerts",
        "GetBalance",
        "IssueToken",
        "WatchQueueStatus",
        "ListAvailableDates",
        "ListAvailableSeats",
        "HoldSeat",
        "PayReservation",
        "ChargeBalance",
      ])
        expect(used).toContain(rpc);
      expect(calls.filter((c) => !EXPECTED_CONTENT_TYPES[protocol].test(c.contentType))).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

test("the page keeps the user signed in across a reload, and picks up a hold taken before it", async () => {
  const DATE = DATES.reload;
  const context = await chromium.context();
  const p = await context.newPage();
  try {
    await signIn(p, stack.url, "reload-user");
    // Admission is by hand here too: keep ticking while the page waits.
    await p.locator(`[data-testid=get-tickets-${CONCERT}]`).click();
    await admitUntil(p, async () => (await p.locator(".date-card").count()) > 0);
    await p.locator(`.date-card[data-date="${DATE}"]`).click();
    await p.locator("[data-seat='44']").click();
    await p.locator("[data-testid=hold]").click();
    await p.locator("[data-testid=hold-timer]").waitFor();

    await p.reload();
    await p.locator(".concert-card").first().waitFor();
    expect(await p.locator("[data-testid=user]").innerText()).toBe("reload-user");
    // IssueToken answers with the live (ACTIVE) token: straight back to the dates, the hold found again.
    await openSeatMap(p, CONCERT, DATE);
    await p.locator("[data-testid=hold-timer]").waitFor();
    expect(await p.locator("[data-testid=held-seat]").innerText()).toBe("Seat 44");
    expect(await seatState(p, 44)).toBe("held-by-you");
  } finally {
    await context.close();
  }
});
