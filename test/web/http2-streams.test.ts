/**
 * Why the port speaks TLS: a browser opens at most 6 HTTP/1.1 connections to
 * one host, and a server stream holds its connection for as long as it runs,
 * so a page watching more than 6 queue tickets over HTTP/1.1 has the rest
 * stuck in the browser, never reaching the server. Over TLS the browser
 * negotiates HTTP/2 (ALPN) and all of them share one connection.
 *
 * One page, 20 WatchQueueStatus streams (Connect, as connect-web sends them),
 * counted where it matters: open on the server.
 */
import type { Page } from "playwright-core";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { makeCertificate, type TestCertificate } from "../e2e/tls-cert";
import { BROWSER_TEST_TIMEOUT_MS, launchChromium, VIEWPORT, type TestBrowser } from "./support";

jest.setTimeout(BROWSER_TEST_TIMEOUT_MS);

const STREAMS = 20;
/** Chromium's connections per host (and per proxy) for HTTP/1.1. */
const HTTP1_CONNECTIONS_PER_HOST = 6;

let pki: TestCertificate;
let chromium: TestBrowser;
let db: TestDatabase;

beforeAll(async () => {
  pki = makeCertificate();
  chromium = await launchChromium();
  db = await createTestDatabase();
});
afterAll(async () => {
  await chromium?.close();
  await db?.drop();
  pki?.remove();
});

/**
 * Run in a page of the API's own origin: issues `count` tokens, then opens a
 * WatchQueueStatus stream for each and keeps reading. Returns at once; the
 * page counts the streams that got their first message in
 * `window.streamsAnswered`. (Page code, so plain JavaScript.)
 */
const WATCH_FROM_PAGE = `async (count) => {
  window.streamsAnswered = 0;
  const headers = { "connect-protocol-version": "1" };
  const tokens = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch("/boxoffice.queue.v1.QueueService/IssueToken", {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ userId: "watcher-" + i }),
    });
    tokens.push((await res.json()).ticket.token);
  }
  for (const token of tokens) {
    // A Connect server-stream request: one enveloped message (flags, big-endian length, JSON).
    const json = new TextEncoder().encode(JSON.stringify({ token }));
    const body = new Uint8Array(5 + json.length);
    new DataView(body.buffer).setUint32(1, json.length);
    body.set(json, 5);
    fetch("/boxoffice.queue.v1.QueueService/WatchQueueStatus", {
      method: "POST",
      headers: { ...headers, "content-type": "application/connect+json" },
      body,
    })
      .then(async (res) => {
        const reader = res.body.getReader();
        await reader.read();
        window.streamsAnswered++;
        while (!(await reader.read()).done);
      })
      .catch(() => undefined);
  }
}`;

const watchFromPage = (page: Page) => page.evaluate(`(${WATCH_FROM_PAGE})(${STREAMS})`);
const streamsAnswered = (page: Page) => page.evaluate("window.streamsAnswered") as Promise<number>;
/** The protocol the browser agreed on for the page's origin. */
const pageProtocol = (page: Page) => page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") as Promise<string>;

async function until(what: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function withServer(env: Record<string, string>, run: (api: TestServer) => Promise<void>): Promise<void> {
  const api = await startTestServer({ DATABASE_URL: db.url, ...env });
  try {
    await run(api);
  } finally {
    await api.stop();
  }
}

test(`over TLS the page's ${STREAMS} streams all reach the server, on HTTP/2`, async () => {
  await withServer({ TLS_CERT_FILE: pki.certFile, TLS_KEY_FILE: pki.keyFile }, async (api) => {
    const context = await chromium.browser.newContext({ viewport: VIEWPORT, ignoreHTTPSErrors: true });
    try {
      const page = await context.newPage();
      const landing = await page.goto(`https://localhost:${api.port}/healthz`);
      expect(landing?.status()).toBe(200);
      expect(await pageProtocol(page)).toBe("h2");
      await watchFromPage(page);
      expect(await until(() => api.deps.queue.openStreams === STREAMS, 20_000)).toBe(true);
      await page.waitForFunction(`window.streamsAnswered === ${STREAMS}`, undefined, { timeout: 10_000 });
    } finally {
      await context.close();
    }
    // The page is gone: its streams end on the server too.
    expect(await until(() => api.deps.queue.openStreams === 0, 10_000)).toBe(true);
  });
});

test(`over plaintext HTTP/1.1 the same page gets only ${HTTP1_CONNECTIONS_PER_HOST} streams to the server`, async () => {
  await withServer({}, async (api) => {
    const context = await chromium.browser.newContext({ viewport: VIEWPORT });
    try {
      const page = await context.newPage();
      await page.goto(`${api.baseUrl}/healthz`);
      expect(await pageProtocol(page)).toBe("http/1.1");
      await watchFromPage(page);
      expect(await until(() => api.deps.queue.openStreams === HTTP1_CONNECTIONS_PER_HOST, 20_000)).toBe(true);
      // However long it waits, the rest stay queued in the browser.
      await new Promise((r) => setTimeout(r, 2000));
      expect(api.deps.queue.openStreams).toBe(HTTP1_CONNECTIONS_PER_HOST);
      expect(await streamsAnswered(page)).toBe(HTTP1_CONNECTIONS_PER_HOST);
    } finally {
      await context.close();
    }
  });
});
