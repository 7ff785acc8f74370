/**
 * Two buyers in two browser contexts race for one seat: both see it free,
 * both press "Hold" at the same moment. Exactly one holds it; the other is
 * told, in plain words, that someone else just took it, and the map shows it
 * held. The database has one hold on the seat.
 */
import type { Page } from "playwright-core";
import { createBoxofficeClient, ReservationStatus } from "../../packages/client/src";
import { checkInvariants } from "../../src/modules/payment/invariants";
import {
  BROWSER_TEST_TIMEOUT_MS,
  builtPage,
  launchChromium,
  noticeFor,
  openSeatMap,
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

const CONCERT = "bts-permission-to-dance-2027";
const DATE = "2027-04-10";
const SEAT = 7;

let page: { dir: string; remove(): void };
let chromium: TestBrowser;
let stack: Stack;

beforeAll(async () => {
  page = await builtPage();
  chromium = await launchChromium();
  stack = await startStack(page.dir);
});
afterAll(async () => {
  await stack?.stop();
  await chromium?.close();
  page?.remove();
});

test("two browsers press Hold on the same seat at once: one holds it, the other sees it held", async () => {
  const contexts = await Promise.all([chromium.context(), chromium.context()]);
  try {
    const pages: Page[] = await Promise.all(contexts.map((c) => c.newPage()));
    const errors = pages.map(watchErrors);
    const users = ["racer-alice", "racer-bob"];
    await Promise.all(pages.map((p, i) => signIn(p, stack.url, users[i])));
    await Promise.all(pages.map((p) => openSeatMap(p, CONCERT, DATE)));
    for (const p of pages) {
      expect(await seatState(p, SEAT)).toBe("free");
      await p.locator(`[data-seat='${SEAT}']`).click();
      await p.locator("[data-testid=hold]").waitFor();
    }

    await Promise.all(pages.map((p) => p.locator("[data-testid=hold]").click()));

    // Each page ends in one of the two outcomes.
    const outcome = (p: Page) =>
      Promise.race([
        p
          .locator("[data-testid=hold-timer]")
          .waitFor()
          .then(() => "won" as const),
        p
          .locator('[data-testid=notice][data-reason="SEAT_UNAVAILABLE"]')
          .waitFor()
          .then(() => "lost" as const),
      ]);
    const outcomes = await Promise.all(pages.map(outcome));
    expect([...outcomes].sort()).toEqual(["lost", "won"]);
    const winner = pages[outcomes.indexOf("won")];
    const loser = pages[outcomes.indexOf("lost")];

    expect(await winner.locator("[data-testid=held-seat]").innerText()).toBe(`Seat ${SEAT}`);
    const words = await noticeFor(loser, "SEAT_UNAVAILABLE");
    expect(words).toMatch(new RegExp(`(Someone else (just took|is taking) seat ${SEAT})|(Seat ${SEAT} has just been sold)`));
    expect(words).toContain("Please pick another seat");
    await waitForSeat(loser, SEAT, "held");
    expect(await loser.locator("[data-testid=hold]").count()).toBe(0);
    await waitForSeat(winner, SEAT, "held-by-you");
    await screenshot(loser, "08-refused-seat-taken");

    // The server: one hold on the seat, the winner's.
    const api = createBoxofficeClient({ baseUrl: stack.api.baseUrl });
    const holds = await Promise.all(users.map(async (u) => (await api.reservations.listReservations({ userId: u })).reservations));
    const onSeat = holds.flat().filter((r) => r.concertId === CONCERT && r.date === DATE && r.seatNumber === SEAT);
    expect(onSeat.map((r) => [r.userId, r.status])).toEqual([[users[outcomes.indexOf("won")], ReservationStatus.HELD]]);
    expect(await checkInvariants(stack.api.deps.orm.em.fork())).toEqual([]);
    expect(errors.flat()).toEqual([]);
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});
