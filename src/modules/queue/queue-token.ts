import { createHmac, timingSafeEqual } from "node:crypto";
import type { TicketRef } from "./queue-store.js";

/**
 * A queue token is a signed ticket reference: base64url(user id), the ticket
 * number, and a 128-bit HMAC-SHA256 tag under a secret only the servers know.
 * Nobody can mint or alter one without the secret, it names its user, and the
 * store keeps no per-token record (the ticket number is already stored for the
 * queue position), which is what keeps a waiting user to ~130 bytes of Redis.
 */
const VERSION = "q1";
const TAG_BYTES = 16;

export function signToken(secret: Buffer, ref: TicketRef): string {
  const body = `${VERSION}.${Buffer.from(ref.userId).toString("base64url")}.${ref.seq.toString(36)}`;
  return `${body}.${tag(secret, body)}`;
}

/**
 * The ticket a token refers to, or undefined when it was not signed by us.
 * Only the one spelling we issue verifies: Node's base64url decoder also takes
 * padding, the '+' '/' alphabet and stray trailing bits, which would give one
 * ticket many tokens (and a per-token limit as many budgets).
 */
export function verifyToken(secret: Buffer, token: string): TicketRef | undefined {
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== VERSION) return undefined;
  const body = parts.slice(0, 3).join(".");
  const given = canonicalBase64url(parts[3]);
  const expected = Buffer.from(tag(secret, body), "base64url");
  if (!given || given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  const userId = canonicalBase64url(parts[1])?.toString();
  const seq = parseInt(parts[2], 36);
  if (!userId || !Number.isSafeInteger(seq) || seq <= 0 || seq.toString(36) !== parts[2]) return undefined;
  return { userId, seq };
}

/** The bytes of `text` if it is exactly how base64url without padding writes them. */
function canonicalBase64url(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

function tag(secret: Buffer, body: string): string {
  return createHmac("sha256", secret).update(body).digest().subarray(0, TAG_BYTES).toString("base64url");
}
