/**
 * What the on-sale page's files are served with, by either server of the
 * page: the API at `/` (http-endpoints.ts) and web/serve.ts on a port of its
 * own. Both must agree, or the page behaves differently depending on who
 * served it.
 */

/** Content types of the files a page build holds; anything else is application/octet-stream. */
export const PAGE_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** The page may call its own origin and `apiOrigin` (when the API lives elsewhere), nothing else. */
export function pageSecurityHeaders(apiOrigin?: string): Record<string, string> {
  return {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": [
      "default-src 'self'",
      apiOrigin === undefined ? "connect-src 'self'" : `connect-src 'self' ${apiOrigin}`,
      "img-src 'self' data:",
      // The page sets a few CSS variables through style attributes (cover-art hues, bar widths).
      "style-src 'self' 'unsafe-inline'",
      "script-src 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
  };
}
