/**
 * Serves the built page (web/dist) on its own port, next to the API.
 *
 *   npm run web:build && npm run web
 *
 * WEB_HOST (127.0.0.1), WEB_PORT (8081): where the page is served.
 * BOXOFFICE_API_URL: the API's base URL as the browser reaches it. Unset: the
 *   host the page was opened on, port 8080 (http://<host>:8080).
 * WEB_PROTOCOL: connect (default) or grpc-web.
 * WEB_AUTH_MODE: none, jwt, or auto (default: the page asks the server).
 *
 * The page and the API are different origins, so the server must allow the
 * page's: CORS_ORIGINS=http://127.0.0.1:8081 npm start
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { PAGE_TYPES, pageSecurityHeaders } from "../src/page-headers";
import { configScript, DIST_DIR } from "./build";

export interface WebServerOptions {
  /** The built page (default web/dist). */
  root?: string;
  /** Fixed API base URL; unset: http://<the page's host>:8080. */
  apiBaseUrl?: string;
  protocol?: "connect" | "grpc-web";
  authMode?: "none" | "jwt" | "auto";
}

export interface WebServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export function createWebHandler(opts: WebServerOptions = {}) {
  const root = opts.root ?? DIST_DIR;
  if (!existsSync(join(root, "index.html"))) throw new Error(`${root}/index.html is missing: run \`npm run web:build\` first`);
  const apiFor = (req: IncomingMessage) => {
    if (opts.apiBaseUrl) return opts.apiBaseUrl;
    const host = new URL(`http://${req.headers.host ?? "127.0.0.1"}`).hostname;
    return `http://${host.includes(":") ? `[${host}]` : host}:8080`;
  };
  return (req: IncomingMessage, res: import("node:http").ServerResponse) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400, { "content-type": "text/plain" }).end("bad path\n");
      return;
    }
    const api = apiFor(req);
    const headers = { ...pageSecurityHeaders(new URL(api).origin), "cache-control": "no-cache" };
    if (path === "/config.js") {
      const body = configScript({ apiBaseUrl: api, protocol: opts.protocol, authMode: opts.authMode });
      res.writeHead(200, { ...headers, "content-type": PAGE_TYPES[".js"] }).end(req.method === "HEAD" ? undefined : body);
      return;
    }
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { ...headers, "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { ...headers, "content-type": PAGE_TYPES[extname(file)] ?? "application/octet-stream", "content-length": body.byteLength });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

export async function startWebServer(opts: WebServerOptions & { host?: string; port?: number } = {}): Promise<WebServer> {
  const server = createServer(createWebHandler(opts));
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function envChoice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
  const v = process.env[name];
  if (!v) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`${name} must be one of ${allowed.join(", ")} (got "${v}")`);
  return v as T;
}

if (require.main === module) {
  try {
    const port = Number(process.env.WEB_PORT || 8081);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`WEB_PORT must be a port number (got "${process.env.WEB_PORT}")`);
    const apiBaseUrl = process.env.BOXOFFICE_API_URL || undefined;
    if (apiBaseUrl) new URL(apiBaseUrl);
    startWebServer({
      host: process.env.WEB_HOST || "127.0.0.1",
      port,
      apiBaseUrl,
      protocol: envChoice("WEB_PROTOCOL", ["connect", "grpc-web"] as const),
      authMode: envChoice("WEB_AUTH_MODE", ["none", "jwt", "auto"] as const),
    }).then(
      (w) => {
        process.stdout.write(`on-sale page: ${w.url}/  (API: ${apiBaseUrl ?? "http://<page host>:8080"}; the API needs CORS_ORIGINS=${w.url})\n`);
      },
      (err) => {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
