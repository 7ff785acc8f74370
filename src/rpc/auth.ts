import { readFile } from "node:fs/promises";
import { Code } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from "jose";
import type { AuthConfig } from "../config.js";
import { domainError } from "../platform/errors.js";
import type { Logger } from "../platform/logger.js";
import { Reason } from "../platform/reasons.js";
import type { Principal } from "./context.js";

/** Scopes (the `scope` claim, space-separated) that widen what a caller may do. */
export const SCOPES = {
  /** Credit any user's wallet (the payment provider's callback service). Required for ChargeBalance. */
  walletCharge: "wallet:charge",
  /** Act for any user on the other RPCs (gated calls still need that user's ACTIVE queue token). */
  service: "boxoffice:service",
} as const;

/** The reasons a bearer token is refused with (UNAUTHENTICATED; keysUnavailable: UNAVAILABLE). */
export const AUTH_REASONS = {
  missing: Reason.AUTH_TOKEN_MISSING,
  malformed: Reason.AUTH_TOKEN_MALFORMED,
  expired: Reason.AUTH_TOKEN_EXPIRED,
  notYetValid: Reason.AUTH_TOKEN_NOT_YET_VALID,
  invalid: Reason.AUTH_TOKEN_INVALID,
  subject: Reason.AUTH_SUBJECT_UNSUPPORTED,
  keysUnavailable: Reason.AUTH_KEYS_UNAVAILABLE,
} as const;

/** Asymmetric algorithms only: a shared secret (HS*) or `none` never verifies a caller. */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** The user ids the database keeps are at most 64 characters; a `sub` must fit, printable ASCII, no spaces. */
const SUBJECT = /^[\x21-\x7e]{1,64}$/;

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i;

export interface Authenticator {
  readonly mode: AuthConfig["mode"];
  /**
   * The caller behind an `authorization` header value. In `none` mode nobody
   * is verified. In `jwt` mode a missing header is anonymous (the policy
   * decides whether that is enough); anything else must verify, or this
   * throws UNAUTHENTICATED with a reason (UNAVAILABLE when the keys cannot be had).
   */
  authenticate(authorization: string | null): Promise<Principal>;
  close(): void;
}

const unauthenticated = (reason: Reason, message: string) => domainError(Code.Unauthenticated, reason, message);

export async function createAuthenticator(config: AuthConfig, log: Logger): Promise<Authenticator> {
  if (config.mode === "none") {
    log.warn(
      "AUTH_MODE=none: callers are not authenticated and the user ids in requests are trusted; anyone who can reach the port can act as any user. Use AUTH_MODE=jwt outside a laptop.",
    );
    return { mode: "none", authenticate: async () => ({ kind: "anonymous", trusted: true }), close() {} };
  }
  const keys = await openKeySet(config.jwks, config.jwksCooldownMs, log);
  const options = {
    issuer: config.issuer,
    audience: config.audience,
    algorithms: ALGORITHMS,
    clockTolerance: Math.round(config.clockToleranceMs / 1000),
    requiredClaims: ["sub", "exp"],
  };
  return {
    mode: "jwt",
    async authenticate(header) {
      if (header === null || header === "") return { kind: "anonymous", trusted: false };
      const m = BEARER.exec(header.trim());
      if (!m) throw unauthenticated(AUTH_REASONS.malformed, "the authorization header must be `Bearer <JWT>`");
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(m[1], keys.get, options));
      } catch (err) {
        throw translate(err, log);
      }
      // jose does not check the claim's type: a number or an array would pass the test below as its string form.
      const sub = typeof payload.sub === "string" ? payload.sub : "";
      if (!SUBJECT.test(sub)) throw unauthenticated(AUTH_REASONS.subject, "the token's sub must be 1-64 printable ASCII characters without spaces");
      const scope = typeof payload.scope === "string" ? payload.scope : "";
      return { kind: "user", userId: sub, scopes: new Set(scope.split(" ").filter(Boolean)) };
    },
    close() {},
  };
}

/** jose's verdicts as what a client can act on; never the library's wording of our keys. */
function translate(err: unknown, log: Logger) {
  if (err instanceof errors.JWTExpired) return unauthenticated(AUTH_REASONS.expired, "the bearer token has expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    // Only a future nbf becomes valid later; a non-numeric one never does.
    if (err.claim === "nbf" && err.reason === "check_failed") return unauthenticated(AUTH_REASONS.notYetValid, "the bearer token is not valid yet");
    return unauthenticated(AUTH_REASONS.invalid, `the bearer token's ${err.claim} claim is not accepted`);
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid)
    return unauthenticated(AUTH_REASONS.malformed, "the bearer token is not a well-formed JWT");
  if (err instanceof errors.JWKSNoMatchingKey) return unauthenticated(AUTH_REASONS.invalid, "the bearer token was signed by an unknown key");
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
    return unauthenticated(AUTH_REASONS.invalid, "the bearer token's algorithm is not accepted (asymmetric signatures only)");
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSMultipleMatchingKeys)
    return unauthenticated(AUTH_REASONS.invalid, "the bearer token's signature does not verify");
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSEError || isTypeError(err)) {
    // The identity provider's key set could not be had: not the caller's fault.
    log.warn({ err: String(err) }, "could not load the JWKS to verify a bearer token");
    return domainError(Code.Unavailable, AUTH_REASONS.keysUnavailable, "the keys to verify bearer tokens are unavailable; retry the call");
  }
  return unauthenticated(AUTH_REASONS.invalid, "the bearer token does not verify");
}

/** fetch's "fetch failed"; by name, since it may come from another realm (Jest's sandbox) than our TypeError. */
const isTypeError = (err: unknown) => err instanceof TypeError || (typeof err === "object" && err !== null && (err as { name?: unknown }).name === "TypeError");

interface KeySet {
  get: JWTVerifyGetKey;
}

/** A JWKS URL (fetched and cached by jose) or a local file, re-read when a token names a key it lacks. */
async function openKeySet(source: string, cooldownMs: number, log: Logger): Promise<KeySet> {
  if (/^https?:\/\//i.test(source)) {
    const remote = createRemoteJWKSet(new URL(source), { cooldownDuration: cooldownMs, timeoutDuration: 5000 });
    // Warm the cache; an identity provider that is down at boot must not keep us down.
    await remote
      .reload()
      .catch((err: unknown) => log.warn({ jwks: source, err: String(err) }, "could not load the JWKS at start; will retry on the first call"));
    return { get: remote };
  }
  return openFileKeySet(source, cooldownMs, log);
}

async function openFileKeySet(path: string, cooldownMs: number, log: Logger): Promise<KeySet> {
  // Changes are told by content, not mtime: file timestamps tick coarsely, so a rewrite just after a read can keep the mtime.
  const parse = (text: string) => {
    const jwks = JSON.parse(text) as JSONWebKeySet;
    if (!Array.isArray(jwks?.keys)) throw new Error(`${path} is not a JWKS (no "keys" array)`);
    return { local: createLocalJWKSet(jwks), text };
  };
  let current = await readFile(path, "utf8")
    .then(parse)
    .catch((err: unknown) => {
      throw new Error(`AUTH_JWKS: cannot read a key set from ${path}: ${(err as Error).message}`);
    });
  let checkedAt = Date.now();
  const get: JWTVerifyGetKey = async (header, token) => {
    try {
      return await current.local(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || Date.now() - checkedAt < cooldownMs) throw err;
      checkedAt = Date.now();
      // A key published since we last read the file: rotation without a restart.
      const text = await readFile(path, "utf8").catch(() => current.text);
      if (text === current.text) throw err;
      try {
        current = parse(text);
        log.info({ jwks: path }, "reloaded the JWKS file");
      } catch (loadErr) {
        log.warn({ jwks: path, err: String(loadErr) }, "could not reload the JWKS file; keeping the keys read before");
        throw err;
      }
      return current.local(header, token);
    }
  };
  return { get };
}
