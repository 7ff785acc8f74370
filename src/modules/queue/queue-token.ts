import { createHmac, timingSafeEqual } from "node:crypto";
import type { TicketOrigin, TicketRef } from "./queue-store.js";

/**
 * A queue token is a signed ticket reference: base64url(user id), the ticket
 * number, what it takes to put the ticket back if the store loses it, and a
 * 128-bit HMAC-SHA256 tag under a secret only the servers know. Nobody can
 * mint or alter one without the secret, it names its user, and the store
 * keeps no per-token record (the ticket number is already stored for the
 * queue position), which is what keeps a waiting user to ~150 bytes of Redis.
 *
 *   q2.<user>.<seq>.<generation>.w<issuedAt>.<tag>   signed at issue
 *   q2.<user>.<seq>.<generation>.a<activeUntil>.<tag> signed again once ACTIVE
 *   q1.<user>.<seq>.<tag>                             the previous release's: still verifies, restores nothing
 *
 * Numbers are base 36, times epoch ms (see TicketOrigin for what they mean).
 */
const TAG_BYTES = 16;

export function signToken(secret: Buffer, ref: TicketRef): string {
  const user = Buffer.from(ref.userId).toString("base64url");
  const o = ref.origin;
  // A ref without an origin is one of a q1 token (re-signed under a newer key): it stays q1.
  const body = o
    ? `q2.${user}.${ref.seq.toString(36)}.${o.generation.toString(36)}.${o.state === "ACTIVE" ? `a${o.activeUntil.toString(36)}` : `w${o.issuedAt.toString(36)}`}`
    : `q1.${user}.${ref.seq.toString(36)}`;
  return `${body}.${tag(secret, body)}`;
}

/**
 * The ticket a token refers to, or undefined when none of `secrets` signed it.
 * Only the one spelling we issue verifies: Node's base64url decoder also takes
 * padding, the '+' '/' alphabet and stray trailing bits, which would give one
 * ticket many tokens (and a per-token limit as many budgets); numbers must be
 * lower case without leading zeros for the same reason.
 */
export function verifyToken(secrets: Buffer | readonly Buffer[], token: string): TicketRef | undefined {
  const parts = token.split(".");
  const fields = parts[0] === "q2" ? 6 : parts[0] === "q1" ? 4 : 0;
  if (parts.length !== fields) return undefined;
  const body = parts.slice(0, -1).join(".");
  const given = canonicalBase64url(parts[fields - 1]);
  if (!given || given.length !== TAG_BYTES) return undefined;
  const keys = Buffer.isBuffer(secrets) ? [secrets] : secrets;
  if (!keys.some((k) => timingSafeEqual(given, Buffer.from(tag(k, body), "base64url")))) return undefined;
  const userId = canonicalBase64url(parts[1])?.toString();
  const seq = base36(parts[2]);
  if (!userId || !seq) return undefined;
  if (fields === 4) return { userId, seq };
  const origin = parseOrigin(parts[3], parts[4]);
  return origin && { userId, seq, origin };
}

function parseOrigin(generationText: string, timeText: string): TicketOrigin | undefined {
  const generation = base36(generationText);
  if (!generation) return undefined;
  const time = timeText === "w0" ? 0 : base36(timeText.slice(1));
  if (time === undefined) return undefined;
  if (timeText[0] === "w") return { generation, state: "WAITING", issuedAt: time };
  if (timeText[0] === "a" && time > 0) return { generation, state: "ACTIVE", activeUntil: time };
  return undefined;
}

/** A positive safe integer written the one way toString(36) writes it. */
function base36(text: string): number | undefined {
  if (!/^[1-9a-z][0-9a-z]*$/.test(text)) return undefined;
  const n = parseInt(text, 36);
  return Number.isSafeInteger(n) && n.toString(36) === text ? n : undefined;
}

/** The bytes of `text` if it is exactly how base64url without padding writes them. */
function canonicalBase64url(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

function tag(secret: Buffer, body: string): string {
  return createHmac("sha256", secret).update(body).digest().subarray(0, TAG_BYTES).toString("base64url");
}
