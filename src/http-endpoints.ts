import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { extname, resolve, sep } from "node:path";
import { Code, cors as connectCors } from "@connectrpc/connect";
import { PAGE_TYPES, pageSecurityHeaders } from "./page-headers.js";
import { ServingStatus, type HealthState } from "./rpc/health.js";

export type Request = IncomingMessage | Http2ServerRequest;
export type Response = ServerResponse | Http2ServerResponse;
export type Handler = (req: Request, res: Response) => void;

export interface CorsSettings {
  /** CORS_ORIGINS; empty: no CORS headers at all. */
  corsOrigins: string[];
  /** CORS_ALLOWED_HEADERS: request headers allowed besides the protocol's and ours. */
  corsAllowedHeaders: string[];
}

/**
 * Answers CORS preflights for the configured origins and decorates their
 * responses. Every response says `Vary: Origin` (one from a listed origin
 * carries headers another does not, so a shared cache must not mix them up),
 * and a preflight from an origin not listed is refused without any allow
 * header, so the browser blocks the call before it is sent.
 */
export function withCors({ corsOrigins: origins, corsAllowedHeaders }: CorsSettings, next: Handler): Handler {
  if (origins.length === 0) return next;
  const anyOrigin = origins.includes("*");
  const allowMethods = connectCors.allowedMethods.join(", ");
  const allowHeaders = [...new Set([...connectCors.allowedHeaders, "X-Queue-Token", "X-Request-Id", "Authorization", ...corsAllowedHeaders])].join(", ");
  const exposeHeaders = [...connectCors.exposedHeaders, "X-Request-Id"].join(", ");
  return (req, res) => {
    res.setHeader("Vary", "Origin");
    const origin = req.headers.origin;
    const allowed = origin !== undefined && (anyOrigin || origins.includes(origin));
    if (allowed) {
      res.setHeader("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
    }
    if (req.method === "OPTIONS" && origin !== undefined && req.headers["access-control-request-method"]) {
      if (allowed) {
        res.setHeader("Access-Control-Allow-Methods", allowMethods);
        res.setHeader("Access-Control-Allow-Headers", allowHeaders);
        res.setHeader("Access-Control-Max-Age", "7200");
        res.writeHead(204);
        res.end();
      } else {
        // What a developer finds in the network tab next to the browser's "Failed to fetch".
        res.writeHead(403, { "content-type": "text/plain" });
        res.end(`origin ${origin} is not in CORS_ORIGINS\n`);
      }
      return;
    }
    next(req, res);
  };
}

/**
 * Plain HTTP endpoints beside the RPCs: a liveness probe and, when `pageRoot`
 * holds a built page (web/dist), the on-sale page at `/` on the API's own
 * origin. Metrics are not here: they are served on their own loopback
 * listener (METRICS_HOST/PORT), and /metrics on this port is a 404 like any
 * other unknown path.
 */
export function createHttpEndpoints(health: HealthState, pageRoot?: string): Handler {
  const page = pageRoot === undefined ? undefined : createStaticPage(pageRoot);
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      const serving = health.get("") === ServingStatus.SERVING;
      res.writeHead(serving ? 200 : 503, { "content-type": "text/plain" });
      res.end(serving ? "ok\n" : "shutting down\n");
      return;
    }
    const contentType = String(req.headers["content-type"] ?? "");
    if (req.method === "POST" && contentType.startsWith("application/grpc")) {
      // A gRPC client calling a method this server does not have: answer the way
      // gRPC servers do (a trailers-only UNIMPLEMENTED), not with a bare HTTP 404.
      const status = {
        "content-type": contentType.split(";")[0],
        "grpc-status": String(Code.Unimplemented),
        "grpc-message": grpcPercentEncode(`unknown method ${path}`),
      };
      req.resume(); // whatever the client sends is discarded
      if ("stream" in res) {
        // Trailers-only: the status travels in a HEADERS frame that ends the stream.
        res.stream.respond({ ":status": 200, ...status }, { endStream: true });
      } else {
        res.writeHead(200, status);
        res.end();
      }
      return;
    }
    const notFound = () => {
      // Connect clients read HTTP 404 as Code.Unimplemented.
      if (res.headersSent || res.writableEnded) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    };
    if (page && (req.method === "GET" || req.method === "HEAD")) {
      page(req, res).then((served) => served || notFound(), notFound);
      return;
    }
    notFound();
  };
}

/** Same origin as the API: the page may call nothing else. */
const PAGE_HEADERS = pageSecurityHeaders();

interface PageFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  /** sha256 of the body, hex: index.html names app.js and app.css by its first 10 digits (?v=). */
  hash: string;
}

/**
 * The built page's files, read from disk as they are asked for (a rebuild
 * shows at once) and kept while their mtime and size stay the same. index.html
 * refers to app.js and app.css as `?v=<hash>`: such a URL names one content
 * for good and is cached for a year; anything else is revalidated (ETag).
 * Resolves false for what is not a file of the page.
 */
function createStaticPage(root: string): (req: Request, res: Response) => Promise<boolean> {
  const base = resolve(root);
  const files = new Map<string, PageFile>();
  const load = async (file: string): Promise<PageFile | undefined> => {
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    const known = files.get(file);
    if (known && known.mtimeMs === st.mtimeMs && known.size === st.size) return known;
    const body = await readFile(file);
    const loaded = { mtimeMs: st.mtimeMs, size: st.size, body, hash: createHash("sha256").update(body).digest("hex") };
    files.set(file, loaded);
    return loaded;
  };
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://page");
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return false;
    }
    // A trailing slash names a directory, and the page has none to list.
    if (path.includes("\0") || (path !== "/" && path.endsWith("/"))) return false;
    const file = resolve(base, `.${path === "/" ? "/index.html" : path}`);
    if (!file.startsWith(base + sep)) return false;
    const found = await load(file);
    if (!found) return false;
    const version = url.searchParams.get("v");
    const etag = `"${found.hash.slice(0, 32)}"`;
    const headers = {
      ...PAGE_HEADERS,
      "content-type": PAGE_TYPES[extname(file)] ?? "application/octet-stream",
      "cache-control": version && found.hash.startsWith(version) && version.length >= 8 ? "public, max-age=31536000, immutable" : "no-cache",
      etag,
    };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, "content-length": String(found.body.byteLength) });
    if (req.method === "HEAD") res.end();
    else res.end(found.body);
    return true;
  };
}

/** grpc-message encoding: printable ASCII except "%" goes as is, everything else percent-encoded. */
function grpcPercentEncode(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}
