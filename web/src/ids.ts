/**
 * Idempotency keys: random, in the alphabet the API accepts. Not
 * crypto.randomUUID(): that exists only in secure contexts, and the page may
 * be served over plain HTTP on a LAN address.
 */
export function newKey(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The claims a page may show of a JWT (unverified: the server verifies it). */
export function jwtClaims(token: string): { sub?: string; name?: string; preferred_username?: string; email?: string } | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(
      part
        .replace(/-/g, "+")
        .replace(/_/g, "/")
        .padEnd(Math.ceil(part.length / 4) * 4, "="),
    );
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    return typeof claims === "object" && claims !== null ? (claims as ReturnType<typeof jwtClaims>) : undefined;
  } catch {
    return undefined;
  }
}
