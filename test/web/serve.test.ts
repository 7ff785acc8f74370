/**
 * web/serve.ts, the page's static server: serves the build and a config.js
 * naming the API, keeps to its directory, and sends a CSP that lets the page
 * call that API and nothing else.
 */
import { builtPage, rawRequest } from "./support";
import { startWebServer, type WebServer } from "../../web/serve";

let page: { dir: string; remove(): void };
let web: WebServer;

beforeAll(async () => {
  page = await builtPage();
  web = await startWebServer({ root: page.dir, apiBaseUrl: "https://api.tickets.example.com", protocol: "grpc-web" });
});
afterAll(async () => {
  await web?.close();
  page?.remove();
});

/** A raw request to the page's server (or `opts.port`), with `opts.host` as the Host header. */
const get = (path: string, method = "GET", opts: { port?: number; host?: string } = {}) =>
  rawRequest(opts.port ?? web.port, path, method, opts.host ? { host: opts.host } : {});

test("serves the page, its assets and a config.js naming the API", async () => {
  const index = await get("/");
  expect(index.status).toBe(200);
  expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
  const js = index.body.match(/src="(app\.js\?v=[0-9a-f]+)"/)![1];
  const css = index.body.match(/href="(app\.css\?v=[0-9a-f]+)"/)![1];
  expect((await get(`/${js}`)).headers["content-type"]).toBe("text/javascript; charset=utf-8");
  expect((await get(`/${css}`)).headers["content-type"]).toBe("text/css; charset=utf-8");
  const config = await get("/config.js");
  expect(config.body).toBe('window.BOXOFFICE_CONFIG = {"apiBaseUrl":"https://api.tickets.example.com","protocol":"grpc-web"};\n');
  expect(index.headers["content-security-policy"]).toContain("connect-src 'self' https://api.tickets.example.com;");
  expect(index.headers["content-security-policy"]).toContain("script-src 'self';");
  expect(index.headers["x-content-type-options"]).toBe("nosniff");
});

test("stays inside its directory and answers nonsense plainly", async () => {
  expect((await get("/../../package.json")).status).toBe(404);
  expect((await get("/%2e%2e/%2e%2e/package.json")).status).toBe(404);
  expect((await get("/..%2f..%2fpackage.json")).status).toBe(404);
  expect((await get("/%E0%A4%A")).status).toBe(400);
  expect((await get("/nope.js")).status).toBe(404);
  expect((await get("/", "POST")).status).toBe(405);
  expect((await get("/", "HEAD")).status).toBe(200);
});

test("without a fixed API URL, config.js points at port 8080 of the host the page was opened on", async () => {
  const w = await startWebServer({ root: page.dir });
  try {
    const res = await get("/config.js", "GET", { port: w.port, host: `box.example:${w.port}` });
    expect(res.body).toBe('window.BOXOFFICE_CONFIG = {"apiBaseUrl":"http://box.example:8080"};\n');
  } finally {
    await w.close();
  }
});
