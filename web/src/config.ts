import type { Protocol } from "@boxoffice/client";

/** What the page needs to know about its server; set by config.js (web/serve.ts writes it), overridable in the URL. */
export interface PageConfig {
  /** The API's base URL; empty: the page's own origin. */
  apiBaseUrl: string;
  protocol: Protocol;
  /** "auto": ask the server (a call that answers differently in each mode). */
  authMode: "none" | "jwt" | "auto";
}

declare global {
  interface Window {
    BOXOFFICE_CONFIG?: Partial<PageConfig>;
  }
}

/**
 * config.js, then ?protocol=grpc-web&auth=jwt in the page's URL. The API's
 * address comes from config.js only: a link must not be able to send a
 * user's access token to another server.
 */
export function readConfig(): PageConfig {
  const given = window.BOXOFFICE_CONFIG ?? {};
  const q = new URLSearchParams(location.search);
  const protocol = q.get("protocol") ?? given.protocol;
  const authMode = q.get("auth") ?? given.authMode;
  return {
    apiBaseUrl: given.apiBaseUrl || location.origin,
    protocol: protocol === "grpc-web" ? "grpc-web" : "connect",
    authMode: authMode === "none" || authMode === "jwt" ? authMode : "auto",
  };
}
