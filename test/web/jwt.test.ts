/**
 * The page against a server with AUTH_MODE=jwt: it finds out by itself that a
 * token is needed, refuses bad tokens in plain words, books with a good one,
 * and, since an end user cannot top up (ChargeBalance needs wallet:charge),
 * explains that the payment provider credits the wallet; once the provider
 * has, the page pays.
 */
import { Code, createBoxofficeClient, refusalOf } from "../../packages/client/src";
import { createIssuer, epoch, type TestIssuer } from "../auth/jwt-fixtures";
import {
  BROWSER_TEST_TIMEOUT_MS,
  builtPage,
  launchChromium,
  noticeFor,
  openSeatMap,
  recordApiCalls,
  screenshot,
  startStack,
  watchErrors,
  type Stack,
  type TestBrowser,
} from "./support";

jest.setTimeout(BROWSER_TEST_TIMEOUT_MS);

let page: { dir: string; remove(): void };
let chromium: TestBrowser;
let stack: Stack;
let idp: TestIssuer;

beforeAll(async () => {
  page = await builtPage();
  chromium = await launchChromium();
  idp = await createIssuer();
  stack = await startStack(page.dir, {
    env: { AUTH_MODE: "jwt", AUTH_JWKS: idp.jwksPath, AUTH_ISSUER: idp.issuer, AUTH_AUDIENCE: idp.audience },
  });
});
afterAll(async () => {
  await stack?.stop();
  await idp?.close();
  await chromium?.close();
  page?.remove();
});

async function submitToken(p: import("playwright-core").Page, token: string): Promise<void> {
  await p.locator("[data-testid=token]").fill(token);
  await p.locator("[data-testid=signin]").click();
}

test("sign in with an access token, hold a seat, the provider tops up, pay", async () => {
  const context = await chromium.context();
  const p = await context.newPage();
  const errors = watchErrors(p);
  const calls = recordApiCalls(p, stack.api.baseUrl);
  try {
    await p.goto(stack.url);
    await p.locator("[data-testid=token]").waitFor();
    expect(await p.locator("[data-testid=name]").count()).toBe(0);

    // Refusals, by reason.
    await submitToken(p, "not-a-token");
    expect(await noticeFor(p, "AUTH_TOKEN_MALFORMED")).toContain("That doesn't look like an access token.");
    await submitToken(p, await idp.sign({ sub: "jiwoo" }, { key: await idp.newKey() }));
    expect(await noticeFor(p, "AUTH_TOKEN_INVALID")).toContain("We couldn't verify your access token.");
    await submitToken(p, await idp.sign({ sub: "jiwoo", iat: epoch() - 3600, exp: epoch() - 600 }));
    expect(await noticeFor(p, "AUTH_TOKEN_EXPIRED")).toContain("Your sign-in has expired.");

    const token = await idp.sign({ sub: "jiwoo", name: "Jiwoo Park", exp: epoch() + 3600 });
    await p.locator("[data-testid=token]").fill(token);
    await screenshot(p, "10-jwt-sign-in");
    await p.locator("[data-testid=signin]").click();
    await p.locator(".concert-card").first().waitFor();
    expect(await p.locator("[data-testid=user]").innerText()).toBe("Jiwoo Park");

    await openSeatMap(p, "akmu-lovelee-2027", "2027-06-05");
    await p.locator("[data-seat='31']").click();
    await p.locator("[data-testid=hold]").click();
    await p.locator("[data-testid=hold-timer]").waitFor();
    const info = p.locator("[data-testid=topup-info]");
    await info.waitFor();
    expect(await info.innerText()).toContain("Top-ups are made with the payment provider");
    expect(await p.locator("[data-testid=topup]").count()).toBe(0);
    await screenshot(p, "11-jwt-top-up-by-provider");

    // The payment provider's callback service credits the wallet (it holds wallet:charge).
    const provider = createBoxofficeClient({ baseUrl: stack.api.baseUrl, token: await idp.sign({ sub: "payments", scope: "wallet:charge" }) });
    await provider.wallet.chargeBalance({ userId: "jiwoo", amount: 200_000n, idempotencyKey: "psp-42" });

    await info.getByRole("button", { name: "Refresh balance" }).click();
    await p.locator("[data-testid=balance]", { hasText: "₩200,000" }).waitFor();
    await p.locator("[data-testid=pay]").click();
    await p.locator("[data-testid=confirmed]").waitFor();
    expect(await p.locator("[data-testid=paid-amount]").innerText()).toBe("₩121,000");
    expect(await p.locator("[data-testid=balance]").innerText()).toContain("₩79,000");

    // The page never tried to mint money, and every call after sign-in carried the token.
    expect(calls.map((c) => c.path)).not.toContainEqual(expect.stringContaining("ChargeBalance"));
    expect(errors).toEqual([]);
  } finally {
    await context.close();
  }
});

test("why the page offers no top-up in jwt mode: a user's own token is refused SCOPE_REQUIRED", async () => {
  const user = createBoxofficeClient({ baseUrl: stack.api.baseUrl, token: await idp.sign({ sub: "jiwoo" }) });
  const err = await user.wallet.chargeBalance({ userId: "jiwoo", amount: 1_000n }).catch((e: unknown) => e);
  expect(refusalOf(err)).toMatchObject({ code: Code.PermissionDenied, reason: "SCOPE_REQUIRED" });
});
