/**
 * The page and the API live on different origins (another port, or another
 * host name): the browser lets the page call the API only if the API's
 * CORS_ORIGINS names the page's origin. One page server, reached as
 * http://127.0.0.1:P (listed) and http://localhost:P (not listed); and an
 * API with CORS_ORIGINS unset.
 */
import { loadConfig } from "../../src/config";
import {
  BROWSER_TEST_TIMEOUT_MS,
  builtPage,
  launchChromium,
  noticeFor,
  openSeatMap,
  screenshot,
  signIn,
  startStack,
  type Stack,
  type TestBrowser,
} from "./support";

jest.setTimeout(BROWSER_TEST_TIMEOUT_MS);

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

/** What the API answers a browser's preflight from `origin`. */
async function preflight(apiBaseUrl: string, origin: string): Promise<string | null> {
  const res = await fetch(`${apiBaseUrl}/boxoffice.concert.v1.ConcertService/ListAvailableDates`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-queue-token,connect-protocol-version" },
  });
  return res.headers.get("access-control-allow-origin");
}

describe.each(["connect", "grpc-web"])("over %s", (protocol) => {
  test("a page on an origin in CORS_ORIGINS books through the API, gated calls (x-queue-token) included", async () => {
    expect(new URL(stack.url).origin).not.toBe(new URL(stack.api.baseUrl).origin);
    expect(await preflight(stack.api.baseUrl, new URL(stack.url).origin)).toBe(new URL(stack.url).origin);
    const context = await chromium.context();
    try {
      const p = await context.newPage();
      await signIn(p, `${stack.url}?protocol=${protocol}`, `cors-${protocol}`);
      await openSeatMap(p, "seventeen-follow-2027", "2027-05-22");
      expect(await p.locator("[data-testid=free-count]").innerText()).toBe("50 of 50 seats free");
      expect(await p.locator("[data-testid=notice][data-reason=UNREACHABLE]").count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  test("a page on an origin not in CORS_ORIGINS is blocked by the browser and says so", async () => {
    const foreign = stack.url.replace("127.0.0.1", "localhost");
    expect(await preflight(stack.api.baseUrl, new URL(foreign).origin)).toBeNull();
    const context = await chromium.context();
    try {
      const p = await context.newPage();
      const blocked: string[] = [];
      p.on("console", (m) => m.type() === "error" && /CORS/i.test(m.text()) && blocked.push(m.text()));
      await p.goto(`${foreign}?protocol=${protocol}`);
      const words = await noticeFor(p, "UNREACHABLE");
      expect(words).toContain("We can't reach the box office from this page.");
      expect(words).toContain("CORS_ORIGINS");
      // The browser, not the server, refused: it says so on the console.
      expect(blocked.length).toBeGreaterThan(0);
      // Nothing to sign in to: the page could not learn the server's auth mode.
      expect(await p.locator("[data-testid=signin]").isDisabled()).toBe(true);
      if (protocol === "connect") await screenshot(p, "09-refused-cross-origin");
    } finally {
      await context.close();
    }
  });
});

test("with CORS_ORIGINS unset the API sends no CORS headers: a page on another origin cannot call it", async () => {
  const closed = await startStack(page.dir, { cors: () => "" });
  const context = await chromium.context();
  try {
    expect(await preflight(closed.api.baseUrl, new URL(closed.url).origin)).toBeNull();
    const p = await context.newPage();
    await p.goto(closed.url);
    await noticeFor(p, "UNREACHABLE");
    expect(await p.locator(".mini").count()).toBe(0);
  } finally {
    await context.close();
    await closed.stop();
  }
});

/** Runs in the page: a Connect call to the API sending `traceparent`; "ok <status>" or the browser's error. */
const CALL_WITH_TRACEPARENT = (api: string) => `fetch(${JSON.stringify(`${api}/boxoffice.concert.v1.ConcertService/ListConcerts`)}, {
  method: "POST",
  headers: { "content-type": "application/json", "connect-protocol-version": "1", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
  body: "{}",
}).then((r) => "ok " + r.status, (e) => String(e))`;

describe("CORS_ALLOWED_HEADERS", () => {
  test("a page sending traceparent fails the preflight until the header is allowed, then works", async () => {
    const context = await chromium.context();
    const traced = await startStack(page.dir, { env: { CORS_ALLOWED_HEADERS: "traceparent,baggage" } });
    try {
      const p = await context.newPage();
      const blocked: string[] = [];
      p.on("console", (m) => m.type() === "error" && /Access-Control-Allow-Headers/i.test(m.text()) && blocked.push(m.text()));
      // Not allowed (the suite's API): the browser refuses after the preflight, the call never goes out.
      await p.goto(stack.url);
      expect(await p.evaluate(CALL_WITH_TRACEPARENT(stack.api.baseUrl))).toBe("TypeError: Failed to fetch");
      expect(blocked.join("\n")).toMatch(/traceparent/);
      // Allowed.
      await p.goto(traced.url);
      expect(await p.evaluate(CALL_WITH_TRACEPARENT(traced.api.baseUrl))).toBe("ok 200");
    } finally {
      await context.close();
      await traced.stop();
    }
  });

  test("the preflight lists the extra headers beside the protocol's and ours", async () => {
    const traced = await startStack(page.dir, { env: { CORS_ALLOWED_HEADERS: "traceparent,baggage" } });
    try {
      const res = await fetch(`${traced.api.baseUrl}/boxoffice.concert.v1.ConcertService/ListConcerts`, {
        method: "OPTIONS",
        headers: {
          origin: new URL(traced.url).origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "traceparent,baggage,content-type",
        },
      });
      expect(res.status).toBe(204);
      const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(/,\s*/);
      expect(allowed).toEqual(expect.arrayContaining(["traceparent", "baggage", "content-type", "connect-protocol-version", "x-queue-token", "authorization"]));
    } finally {
      await traced.stop();
    }
  });

  test("a header name that is not a token is refused at start", () => {
    expect(() => loadConfig({ CORS_ALLOWED_HEADERS: "traceparent,bad header" })).toThrow(/CORS_ALLOWED_HEADERS/);
  });
});

describe("Vary: Origin and refused preflights", () => {
  const path = "/boxoffice.concert.v1.ConcertService/ListConcerts";
  const call = (origin?: string) =>
    fetch(`${stack.api.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", ...(origin ? { origin } : {}) },
      body: "{}",
    });

  test("every response varies by Origin: listed, not listed, none, preflights, plain endpoints", async () => {
    const listed = new URL(stack.url).origin;
    const responses = [
      await call(listed),
      await call("https://elsewhere.test"),
      await call(),
      await fetch(`${stack.api.baseUrl}${path}`, { method: "OPTIONS", headers: { origin: listed, "access-control-request-method": "POST" } }),
      await fetch(`${stack.api.baseUrl}${path}`, { method: "OPTIONS", headers: { origin: "https://elsewhere.test", "access-control-request-method": "POST" } }),
      await fetch(`${stack.api.baseUrl}/healthz`),
    ];
    for (const res of responses) expect(res.headers.get("vary")).toBe("Origin");
    expect(responses[0].headers.get("access-control-allow-origin")).toBe(listed);
    expect(responses[1].headers.get("access-control-allow-origin")).toBeNull();
  });

  test("a preflight from an origin not listed gets no allow header at all", async () => {
    const res = await fetch(`${stack.api.baseUrl}${path}`, {
      method: "OPTIONS",
      headers: { origin: "https://elsewhere.test", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(res.status).toBe(403);
    expect([...res.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
    expect(await res.text()).toContain("not in CORS_ORIGINS");
  });
});
