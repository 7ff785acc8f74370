/** A queue token has exactly one spelling: the one we issued. */
import { randomBytes } from "node:crypto";
import { signToken, verifyToken } from "../../src/modules/queue/queue-token";

const secret = randomBytes(32);

/** Swaps the last character for another that decodes to the same bytes (only unused bits differ). */
function flipUnusedBits(segment: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const bytes = Buffer.from(segment, "base64url");
  const last = alphabet.indexOf(segment[segment.length - 1]);
  for (let v = 0; v < 64; v++) {
    const other = segment.slice(0, -1) + alphabet[v];
    if (v !== last && Buffer.from(other, "base64url").equals(bytes)) return other;
  }
  throw new Error(`${segment} has no unused trailing bits`);
}

/** Parts of a token whose ticket number has letters and whose tag contains '-' or '_'. */
function tokenWithUrlAlphabet(): string[] {
  for (let seq = 500_000; ; seq++) {
    const parts = signToken(secret, { userId: "alice", seq }).split(".");
    if (/[-_]/.test(parts[3])) return parts;
  }
}

test("a token we issued verifies to its ticket", () => {
  const token = signToken(secret, { userId: "alice@example.com", seq: 123456 });
  expect(verifyToken(secret, token)).toEqual({ userId: "alice@example.com", seq: 123456 });
  expect(verifyToken(randomBytes(32), token)).toBeUndefined();
});

test.each([
  // 16 tag bytes are 22 characters with 4 unused bits; "alice" is 7 with 2 unused.
  ["a padded tag", (p: string[]) => [p[0], p[1], p[2], `${p[3]}==`]],
  ["a padded user id", (p: string[]) => [p[0], `${p[1]}=`, p[2], p[3]]],
  ["a tag with altered unused trailing bits", (p: string[]) => [p[0], p[1], p[2], flipUnusedBits(p[3])]],
  ["a user id with altered unused trailing bits", (p: string[]) => [p[0], flipUnusedBits(p[1]), p[2], p[3]]],
  ["a tag in the '+' '/' alphabet", (p: string[]) => [p[0], p[1], p[2], p[3].replace(/-/g, "+").replace(/_/g, "/")]],
  ["a tag with an extra character", (p: string[]) => [p[0], p[1], p[2], `${p[3]}A`]],
  ["a user id with an extra character", (p: string[]) => [p[0], `${p[1]}A`, p[2], p[3]]],
  ["a ticket number with a leading zero", (p: string[]) => [p[0], p[1], `0${p[2]}`, p[3]]],
  ["a ticket number in upper case", (p: string[]) => [p[0], p[1], p[2].toUpperCase(), p[3]]],
])("%s is refused", (_name, respell) => {
  const parts = tokenWithUrlAlphabet();
  expect(verifyToken(secret, parts.join("."))).toBeDefined();
  const variant = respell(parts).join(".");
  expect(variant).not.toBe(parts.join("."));
  expect(verifyToken(secret, variant)).toBeUndefined();
});

test("the variants would decode to the same bytes: only the spelling tells them apart", () => {
  const [, user, , tag] = tokenWithUrlAlphabet();
  expect(Buffer.from(`${tag}==`, "base64url").equals(Buffer.from(tag, "base64url"))).toBe(true);
  expect(Buffer.from(flipUnusedBits(tag), "base64url").equals(Buffer.from(tag, "base64url"))).toBe(true);
  expect(Buffer.from(tag.replace(/-/g, "+").replace(/_/g, "/"), "base64url").equals(Buffer.from(tag, "base64url"))).toBe(true);
  expect(Buffer.from(flipUnusedBits(user), "base64url").toString()).toBe("alice");
});
