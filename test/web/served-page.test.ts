/**
 * The on-sale page served by the API itself at `/` (PAGE_DIR): the same
 * origin as the calls, so no CORS at all. Static files only for GET/HEAD,
 * nothing outside the directory, content types and cache headers right,
 * and everything that is not a file of the page answered as before
 * (/healthz, 404 for unknown paths, UNIMPLEMENTED for unknown gRPC methods).
 */
import { connect as http2Connect } from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { grpc, grpcJsClient, unaryRaw } from "../e2e/grpc-js";
import { makeCertificate, type TestCertificate } from "../e2e/tls-cert";
import { BROWSER_TEST_TIMEOUT_MS, builtPage, launchChromium, rawRequest, screenshot, signIn, watchErrors, type RawAnswer, type TestBrowser } from "./support";

jest.setTimeout(BROWSER_TEST_TIMEOUT_MS);

let page: { dir: string; remove(): void };
let db: TestDatabase;
let api: TestServer;

beforeAll(async () => {
  page = await builtPage();
  db = await createTestDatabase();
  // No CORS_ORIGINS: the page needs none on its own origin.
  api = await startTestServer({ DATABASE_URL: db.url, SEED_DEMO_CATALOG: "true", PAGE_DIR: page.dir });
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
  page?.remove();
});

/** A raw HTTP/1.1 request to the API's port (or `port`). */
const get = (path: string, method = "GET", headers: Record<string, string> = {}, port = api.port): Promise<RawAnswer> =>
  rawRequest(port, path, method, headers);

describe("over HTTP/1.1", () => {
  test("/ is the page, with its assets and a config.js that means this origin", async () => {
    const index = await get("/");
    expect(index.status).toBe(200);
    expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(index.headers["cache-control"]).toBe("no-cache");
    expect(index.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(index.headers["x-content-type-options"]).toBe("nosniff");
    expect(index.body).toContain('<div id="app">');

    const js = index.body.match(/src="(app\.js\?v=[0-9a-f]+)"/)![1];
    const css = index.body.match(/href="(app\.css\?v=[0-9a-f]+)"/)![1];
    const app = await get(`/${js}`);
    expect(app.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    // The versioned URL names this content for good; the bare one must be revalidated.
    expect(app.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect((await get("/app.js")).headers["cache-control"]).toBe("no-cache");
    expect((await get("/app.js?v=0123456789")).headers["cache-control"]).toBe("no-cache");
    expect((await get(`/${css}`)).headers["content-type"]).toBe("text/css; charset=utf-8");
    expect((await get("/app.js.map")).headers["content-type"]).toBe("application/json; charset=utf-8");

    const config = await get("/config.js");
    expect(config.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(config.body).toBe("window.BOXOFFICE_CONFIG = {};\n");
  });

  test("HEAD and ETag revalidation", async () => {
    const full = await get("/");
    const head = await get("/", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(head.headers["content-length"]).toBe(String(Buffer.byteLength(full.body)));
    const etag = String(full.headers.etag);
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    const again = await get("/", "GET", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.body).toBe("");
  });

  test.each(["/../package.json", "/..%2f..%2fpackage.json", "/%2e%2e/%2e%2e/package.json", "/%00index.html", "/%zz", "/nope.html", "/index.html/", "/metrics"])(
    "%s is a 404",
    async (path) => {
      const res = await get(path);
      expect(res.status).toBe(404);
      expect(res.body).toBe("not found\n");
    },
  );

  test("only GET and HEAD: a POST to the page's path is a 404, as before", async () => {
    expect((await get("/", "POST")).status).toBe(404);
    expect((await get("/index.html", "DELETE")).status).toBe(404);
  });

  test("/healthz, unknown RPCs and the RPCs themselves answer as before", async () => {
    const health = await get("/healthz");
    expect({ status: health.status, body: health.body }).toEqual({ status: 200, body: "ok\n" });

    const transport = createConnectTransport({ baseUrl: api.baseUrl, httpVersion: "1.1" });
    const { ticket } = await createClient(QueueService, transport).issueToken({ userId: "served-page" });
    expect(ticket?.token).toBeTruthy();
    const notThere = await fetch(`${api.baseUrl}/no.such.v1.Service/Method`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
    // Connect clients read HTTP 404 as Code.Unimplemented.
    expect(notThere.status).toBe(404);

    const grpcJs = grpcJsClient(api.port);
    try {
      const err = await unaryRaw(grpcJs, "/no.such.v1.Service/Method", Buffer.alloc(0)).catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      grpcJs.close();
    }
  });

  test("PAGE_DIR=off: / is a 404 like any unknown path", async () => {
    const bare = await startTestServer({ DATABASE_URL: db.url, PAGE_DIR: "off" });
    try {
      expect((await get("/", "GET", {}, bare.port)).status).toBe(404);
      expect((await get("/healthz", "GET", {}, bare.port)).status).toBe(200);
    } finally {
      await bare.stop();
    }
  });
});

test("over TLS and HTTP/2 the same files are served", async () => {
  let pki: TestCertificate | undefined;
  let tls: TestServer | undefined;
  try {
    pki = makeCertificate();
    tls = await startTestServer({ DATABASE_URL: db.url, PAGE_DIR: page.dir, TLS_CERT_FILE: pki.certFile, TLS_KEY_FILE: pki.keyFile });
    const session = http2Connect(`https://localhost:${tls.port}`, { ca: pki.cert });
    try {
      const answer = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const stream = session.request({ ":path": "/", ":method": "GET" });
        let status = 0;
        let type = "";
        let body = "";
        stream.on("response", (h) => {
          status = Number(h[":status"]);
          type = String(h["content-type"]);
        });
        stream.setEncoding("utf8");
        stream.on("data", (c: string) => (body += c));
        stream.on("end", () => resolve({ status, type, body }));
        stream.on("error", reject);
      });
      expect(answer.status).toBe(200);
      expect(answer.type).toBe("text/html; charset=utf-8");
      expect(answer.body).toContain('<div id="app">');
    } finally {
      session.close();
    }
  } finally {
    await tls?.stop();
    pki?.remove();
  }
});

describe("in the browser", () => {
  let chromium: TestBrowser;
  beforeAll(async () => {
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
  });

  test("opening the API's own address shows the page, and the flow starts without CORS", async () => {
    const context = await chromium.context();
    try {
      const p = await context.newPage();
      const errors = watchErrors(p);
      const origins = new Set<string>();
      p.on("request", (r) => origins.add(new URL(r.url()).origin));
      await signIn(p, `${api.baseUrl}/`, "same-origin");
      expect(await p.locator(".concert-card").count()).toBeGreaterThan(0);
      await screenshot(p, "12-served-by-the-api");
      // Every request went to the API's origin: no preflight, no second origin.
      expect([...origins].filter((o) => o.startsWith("http"))).toEqual([api.baseUrl]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
