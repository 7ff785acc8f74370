/** A queue token has exactly one spelling: the one we issued. Both formats verify, under any listed secret. */
import { createHmac, randomBytes } from "node:crypto";
import type { TicketRef } from "../../src/modules/queue/queue-store";
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

describe("q2: what it takes to put a lost ticket back", () => {
  const waiting: TicketRef = { userId: "bob", seq: 77, origin: { generation: 1_764_583_200_000, state: "WAITING", issuedAt: 1_764_583_260_000 } };
  const active: TicketRef = { userId: "bob", seq: 77, origin: { generation: 1_764_583_200_000, state: "ACTIVE", activeUntil: 1_764_583_860_123 } };

  test("a WAITING and an ACTIVE token of one ticket verify to what they were signed with", () => {
    const w = signToken(secret, waiting);
    const a = signToken(secret, active);
    expect(w).toMatch(/^q2\.Ym9i\.25\.[0-9a-z]+\.w[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    expect(a).toMatch(/^q2\.Ym9i\.25\.[0-9a-z]+\.a[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    expect(verifyToken(secret, w)).toEqual(waiting);
    expect(verifyToken(secret, a)).toEqual(active);
    const unknownIssue: TicketRef = { ...waiting, origin: { ...waiting.origin!, state: "WAITING", issuedAt: 0 } };
    expect(verifyToken(secret, signToken(secret, unknownIssue))).toEqual(unknownIssue);
  });

  test.each([
    ["a generation with a leading zero", (p: string[]) => [p[0], p[1], p[2], `0${p[3]}`, p[4]]],
    ["a generation in upper case", (p: string[]) => [p[0], p[1], p[2], p[3].toUpperCase(), p[4]]],
    ["a time with a leading zero", (p: string[]) => [p[0], p[1], p[2], p[3], `w0${p[4].slice(1)}`]],
    ["another kind of time", (p: string[]) => [p[0], p[1], p[2], p[3], `x${p[4].slice(1)}`]],
    ["an ACTIVE token ending at 0", (p: string[]) => [p[0], p[1], p[2], p[3], "a0"]],
    ["a q2 token read as q1", (p: string[]) => ["q1", p[1], p[2], p[3], p[4]]],
  ])("%s is refused, even signed", (_name, respell) => {
    const parts = signToken(secret, waiting).split(".");
    const body = respell(parts.slice(0, 5)).join(".");
    // Signed with the right secret, so only the spelling rules refuse it.
    const tag = createHmac("sha256", secret).update(body).digest().subarray(0, 16).toString("base64url");
    expect(verifyToken(secret, `${body}.${tag}`)).toBeUndefined();
  });

  test("any listed secret verifies; a token whose secret is not listed does not", () => {
    const [older, newer] = [randomBytes(32), randomBytes(32)];
    const token = signToken(older, waiting);
    expect(verifyToken([newer, older], token)).toEqual(waiting);
    expect(verifyToken([newer], token)).toBeUndefined();
    expect(verifyToken([], token)).toBeUndefined();
  });
});

test("a q1 token of the previous release still verifies, and a ref without an origin is signed as q1 again", () => {
  // Signed by the previous release's signToken with this secret.
  const previous = Buffer.from("previous-release-secret-32-bytes!!");
  const token = "q1.YWxpY2VAZXhhbXBsZS5jb20.2n9c.CvRVp-pDokCtMO_uV7K3ow";
  const ref = verifyToken(previous, token);
  expect(ref).toEqual({ userId: "alice@example.com", seq: 123456 });
  expect(signToken(previous, ref!)).toBe(token);
});
