/**
 * What the browser suites share: Debian's chromium driven by playwright-core,
 * the real server (startTestServer) and the built page served beside it on
 * its own origin, and a few steps of the on-sale flow.
 *
 * Chromium is required: without /usr/bin/chromium every browser test fails
 * with the install command, it is never skipped.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { buildWeb } from "../../web/build";
import { startWebServer, type WebServer, type WebServerOptions } from "../../web/serve";
import type { Env } from "../../src/config";
import type { DepsOverrides } from "../../src/deps";
import { createTestDatabase, freePort, startTestServer, type TestDatabase, type TestServer } from "../harness";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
export const VIEWPORT = { width: 1280, height: 860 };

/** Browser suites drive a real page: give them room. */
export const BROWSER_TEST_TIMEOUT_MS = 120_000;

export interface TestBrowser {
  browser: Browser;
  /** A new context (its own cookies and storage: another user). */
  context(): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Launches /usr/bin/chromium headless. Playwright gives every launch a fresh
 * --user-data-dir of its own (a temp dir it deletes on close); XDG_CONFIG_HOME
 * points at another temp dir so crash reports stay out of the home directory.
 */
export async function launchChromium(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium. Install it with:\n  apt-get update && apt-get install -y chromium`);
  const home = mkdtempSync(join(tmpdir(), "boxoffice-chromium-"));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    env: { ...process.env, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
  });
  return {
    browser,
    context: () => browser.newContext({ viewport: VIEWPORT, locale: "en-GB", timezoneId: "Europe/London" }),
    async close() {
      await browser.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The page, built once per suite into a temp dir (suites run in parallel: none writes web/dist). */
export async function builtPage(): Promise<{ dir: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-web-"));
  await buildWeb(dir);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Stack {
  db: TestDatabase;
  api: TestServer;
  web: WebServer;
  /** The page's URL (its origin is in the API's CORS_ORIGINS unless `cors` said otherwise). */
  url: string;
  stop(): Promise<void>;
}

export interface StackOptions {
  env?: Env;
  overrides?: DepsOverrides;
  page?: Omit<WebServerOptions, "root" | "apiBaseUrl">;
  /** CORS_ORIGINS for the API; default: the page's origin. */
  cors?: (pageOrigin: string) => string;
}

/** A fresh database, the real server with the demo catalog, and the built page on another port. */
export async function startStack(pageDir: string, opts: StackOptions = {}): Promise<Stack> {
  const db = await createTestDatabase();
  const webPort = await freePort();
  const pageOrigin = `http://127.0.0.1:${webPort}`;
  let api: TestServer | undefined;
  try {
    api = await startTestServer(
      {
        DATABASE_URL: db.url,
        SEED_DEMO_CATALOG: "true",
        CORS_ORIGINS: opts.cors ? opts.cors(pageOrigin) : pageOrigin,
        ...opts.env,
      },
      opts.overrides,
    );
    const web = await startWebServer({ root: pageDir, port: webPort, apiBaseUrl: api.baseUrl, ...opts.page });
    const started = api;
    return {
      db,
      api: started,
      web,
      url: `${web.url}/`,
      async stop() {
        await web.close();
        await started.stop();
        await db.drop();
      },
    };
  } catch (err) {
    await api?.stop();
    await db.drop();
    throw err;
  }
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP/1.1 request to 127.0.0.1: the path goes out exactly as given (fetch would normalise ".."). */
export function rawRequest(port: number, path: string, method = "GET", headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

// --- pages ---------------------------------------------------------------

/** Where screenshots go: docs/screenshots with UPDATE_SCREENSHOTS=1, else a temp dir (they are still taken). */
const SHOTS_DIR = process.env.UPDATE_SCREENSHOTS ? join(__dirname, "../../docs/screenshots") : join(tmpdir(), "boxoffice-screenshots");

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SHOTS_DIR, { recursive: true });
  const path = join(SHOTS_DIR, `${name}.png`);
  // Nothing hovered, no caret blinking, countdowns mid-second: the same picture run after run.
  await page.mouse.move(0, 0);
  await page.screenshot({ path, fullPage: true, animations: "disabled", caret: "hide" });
  return path;
}

/** Collects the page's errors: a suite ends by checking there were none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

export async function signIn(page: Page, url: string, name: string): Promise<void> {
  await page.goto(url);
  await page.locator("[data-testid=name]").fill(name);
  await page.locator("[data-testid=signin]").click();
  await page.locator(".concert-card").first().waitFor();
}

/** Lineup -> (queue) -> dates -> the seat map of `date`. */
export async function openSeatMap(page: Page, concertId: string, date: string): Promise<void> {
  await page.locator(`[data-testid=get-tickets-${concertId}]`).click();
  await page.locator(`.date-card[data-date="${date}"]`).click();
  await page.locator("[data-testid=seat-map] [data-seat='1']").waitFor();
}

/** The seat's state on the map: free, held (by someone else), sold, held-by-you or yours. */
export const seatState = (page: Page, seat: number) => page.locator(`[data-testid=seat-map] [data-seat='${seat}']`).getAttribute("data-state");

/** Waits until the map shows `seat` in `state`. */
export async function waitForSeat(page: Page, seat: number, state: "free" | "held" | "sold" | "held-by-you" | "yours"): Promise<void> {
  await page.locator(`[data-testid=seat-map] [data-seat='${seat}'][data-state='${state}']`).waitFor();
}

/** Waits for the notice showing `reason` (the server's ErrorInfo reason, or the page's own) and returns its text. */
export async function noticeFor(page: Page, reason: string): Promise<string> {
  const n = page.locator(`[data-testid=notice][data-reason="${reason}"]`);
  await n.waitFor();
  return (await n.innerText()).replace(/\s+/g, " ").trim();
}

/** Every request the page sent to the API, with its content type (which protocol was spoken). */
export function recordApiCalls(page: Page, apiBaseUrl: string): { path: string; contentType: string }[] {
  const calls: { path: string; contentType: string }[] = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(apiBaseUrl) || req.method() !== "POST") return;
    calls.push({ path: new URL(req.url()).pathname, contentType: req.headers()["content-type"] ?? "" });
  });
  return calls;
}
