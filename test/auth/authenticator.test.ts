import { stat, utimes, writeFile } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { AUTH_REASONS, createAuthenticator, type Authenticator } from "../../src/rpc/auth";
import type { Principal } from "../../src/rpc/context";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createIssuer, epoch, unreachableJwksUrl, type SigningAlg, type TestIssuer } from "./jwt-fixtures";

const log = createLogger("silent");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The code and ErrorInfo reason a refused authenticate() gave. */
async function refusal(p: Promise<unknown>): Promise<{ code: Code; reason?: string }> {
  let value: unknown;
  try {
    value = await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return { code: ConnectError.from(err).code, reason: errorReason(err) };
  }
  throw new Error(`expected a refusal, got ${JSON.stringify(value, (_k, v: unknown) => (v instanceof Set ? [...v] : v))}`);
}
const unauthenticated = (reason: string) => ({ code: Code.Unauthenticated, reason });

const user = (userId: string, scopes: string[] = []): Principal => ({ kind: "user", userId, scopes: new Set(scopes) });

describe("createAuthenticator, AUTH_MODE=jwt", () => {
  let idp: TestIssuer;
  let auth: Authenticator;
  const bearer = async (...args: Parameters<TestIssuer["sign"]>) => auth.authenticate(`Bearer ${await idp.sign(...args)}`);

  beforeAll(async () => {
    idp = await createIssuer({ alg: "ES256" });
    auth = await createAuthenticator(idp.authConfig("file"), log);
  });
  afterAll(async () => {
    auth.close();
    await idp.close();
  });

  describe("accepts", () => {
    test.each<[SigningAlg, "file" | "url"]>([
      ["RS256", "file"],
      ["RS256", "url"],
      ["ES256", "file"],
      ["ES256", "url"],
      ["PS256", "file"],
      ["EdDSA", "file"],
    ])("a valid %s token (JWKS from the %s): the sub is the user, scopes from `scope`", async (alg, source) => {
      const own = await createIssuer({ alg });
      try {
        const a = await createAuthenticator(own.authConfig(source), log);
        expect(a.mode).toBe("jwt");
        const token = await own.sign({ sub: "alice", scope: "wallet:charge boxoffice:service" });
        expect(await a.authenticate(`Bearer ${token}`)).toEqual(user("alice", ["wallet:charge", "boxoffice:service"]));
      } finally {
        await own.close();
      }
    });

    test("scope: split on spaces, runs of spaces and a missing or non-string scope give no empty scopes", async () => {
      expect(await bearer({ sub: "u1", scope: "  a  b   c " })).toEqual(user("u1", ["a", "b", "c"]));
      expect(await bearer({ sub: "u1" })).toEqual(user("u1"));
      expect(await bearer({ sub: "u1", scope: "" })).toEqual(user("u1"));
      expect(await bearer({ sub: "u1", scope: ["boxoffice:service"] })).toEqual(user("u1"));
    });

    test("the scheme is case-insensitive and surrounding whitespace is ignored", async () => {
      const token = await idp.sign({ sub: "bob" });
      expect(await auth.authenticate(`bearer ${token}`)).toEqual(user("bob"));
      expect(await auth.authenticate(`  BEARER ${token}  `)).toEqual(user("bob"));
    });

    test("an audience array that includes ours", async () => {
      expect(await bearer({ sub: "u1", aud: ["other", idp.audience] })).toEqual(user("u1"));
    });

    test("a token without kid when the key set has a single key of its type", async () => {
      expect(await bearer({ sub: "u1" }, { kid: null })).toEqual(user("u1"));
    });

    test("a sub of exactly 64 printable characters", async () => {
      const sub = `${"a".repeat(63)}~`;
      expect(await bearer({ sub })).toEqual(user(sub));
    });

    test("exp and nbf within the clock tolerance (30 s)", async () => {
      const now = epoch();
      expect(await bearer({ sub: "u1", exp: now - 10 })).toEqual(user("u1"));
      expect(await bearer({ sub: "u1", nbf: now + 10 })).toEqual(user("u1"));
    });
  });

  describe("no header", () => {
    test.each([null, ""])("%p is an anonymous, untrusted caller", async (header) => {
      expect(await auth.authenticate(header)).toEqual({ kind: "anonymous", trusted: false });
    });
  });

  describe("refuses with UNAUTHENTICATED", () => {
    test("an expired token: AUTH_TOKEN_EXPIRED", async () => {
      expect(await refusal(bearer({ exp: epoch() - 120 }))).toEqual(unauthenticated(AUTH_REASONS.expired));
    });

    test("a token whose nbf is beyond the tolerance: AUTH_TOKEN_NOT_YET_VALID", async () => {
      expect(await refusal(bearer({ nbf: epoch() + 120 }))).toEqual(unauthenticated(AUTH_REASONS.notYetValid));
    });

    test("a non-numeric nbf is an invalid token, not one that becomes valid later", async () => {
      expect(await refusal(bearer({ nbf: "tomorrow" as unknown as number }))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("the tolerance is the configured one: with 0 s, exp a few seconds ago is expired", async () => {
      const strict = await createAuthenticator(idp.authConfig("file", { clockToleranceMs: 0 }), log);
      const token = await idp.sign({ exp: epoch() - 5 });
      expect(await refusal(strict.authenticate(`Bearer ${token}`))).toEqual(unauthenticated(AUTH_REASONS.expired));
      expect(await auth.authenticate(`Bearer ${token}`)).toEqual(user("user-1"));
    });

    test.each([
      ["another issuer", { iss: "https://evil.test/" }],
      ["no issuer", { iss: undefined }],
      ["another audience", { aud: "someone-else" }],
      ["an audience array without ours", { aud: ["a", "b"] }],
      ["no audience", { aud: undefined }],
      ["no exp", { exp: undefined }],
      ["a non-numeric exp", { exp: "never" as unknown as number }],
    ])("%s: AUTH_TOKEN_INVALID", async (_name, claims) => {
      expect(await refusal(bearer(claims))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("no sub: AUTH_TOKEN_INVALID (a required claim)", async () => {
      expect(await refusal(bearer({ sub: undefined }))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test.each([
      ["65 characters", "a".repeat(65)],
      ["empty", ""],
      ["a space", "ali ce"],
      ["non-ASCII", "alicé"],
      ["a control character", "ali\nce"],
      ["a number", 12345],
      ["an array", ["alice"]],
      ["an object", { id: "alice" }],
    ])("a sub with %s: AUTH_SUBJECT_UNSUPPORTED", async (_name, sub) => {
      expect(await refusal(bearer({ sub: sub as string }))).toEqual(unauthenticated(AUTH_REASONS.subject));
    });

    test("`alg: none` with no signature: AUTH_TOKEN_INVALID (algorithm not allowed)", async () => {
      const token = idp.forgeUnsigned({ sub: "mallory", scope: "boxoffice:service" });
      expect(token.endsWith(".")).toBe(true);
      expect(await refusal(auth.authenticate(`Bearer ${token}`))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("HS256 keyed with the public key (key confusion): AUTH_TOKEN_INVALID (algorithm not allowed)", async () => {
      const rsa = await createIssuer({ alg: "RS256" });
      try {
        const a = await createAuthenticator(rsa.authConfig("file"), log);
        // The forgery names the real kid, so only the algorithm allow-list stops it.
        const forged = await rsa.forgeHmacWithPublicKey({ sub: "mallory", scope: "boxoffice:service" });
        expect(await refusal(a.authenticate(`Bearer ${forged}`))).toEqual(unauthenticated(AUTH_REASONS.invalid));
        expect(await refusal(auth.authenticate(`Bearer ${await idp.forgeHmacWithPublicKey({ sub: "mallory" })}`))).toEqual(
          unauthenticated(AUTH_REASONS.invalid),
        );
        // The genuine key still works with the same authenticator.
        expect(await a.authenticate(`Bearer ${await rsa.sign({ sub: "alice" })}`)).toEqual(user("alice"));
      } finally {
        await rsa.close();
      }
    });

    test("a kid the key set does not have: AUTH_TOKEN_INVALID", async () => {
      expect(await refusal(bearer({}, { kid: "nobody-knows-me" }))).toEqual(unauthenticated(AUTH_REASONS.invalid));
      const stranger = await idp.newKey("ES256");
      expect(await refusal(bearer({}, { key: stranger }))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("a signature by another key that claims the published kid: AUTH_TOKEN_INVALID", async () => {
      const impostor = await idp.newKey("ES256", idp.key.kid);
      expect(impostor.kid).toBe(idp.key.kid);
      expect(await refusal(bearer({ sub: "mallory" }, { key: impostor }))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("a tampered payload (claims swapped after signing): AUTH_TOKEN_INVALID", async () => {
      const [h, , s] = (await idp.sign({ sub: "alice" })).split(".");
      const other = (await idp.sign({ sub: "mallory", scope: "boxoffice:service" })).split(".")[1];
      expect(await refusal(auth.authenticate(`Bearer ${h}.${other}.${s}`))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test.each([
      ["Bearer abc"],
      ["Basic xyz"],
      ["Basic dXNlcjpwYXNz"],
      ["Bearer"],
      ["Bearer "],
      ["abc.def.ghi"],
      ["Bearer a.b"],
      ["Bearer a.b.c.d"],
      ["Bearer a.b.c"],
      ["Bearer a+b.c/d.e="],
    ])("%p: AUTH_TOKEN_MALFORMED", async (header) => {
      expect(await refusal(auth.authenticate(header))).toEqual(unauthenticated(AUTH_REASONS.malformed));
    });

    test("a well-formed JWT that no key signed (garbage signature): AUTH_TOKEN_INVALID", async () => {
      expect(await refusal(auth.authenticate("Bearer eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    });

    test("a valid token followed by more text: AUTH_TOKEN_MALFORMED", async () => {
      const token = await idp.sign();
      expect(await refusal(auth.authenticate(`Bearer ${token} extra`))).toEqual(unauthenticated(AUTH_REASONS.malformed));
      expect(await refusal(auth.authenticate(`Bearer ${token}, Bearer ${token}`))).toEqual(unauthenticated(AUTH_REASONS.malformed));
    });
  });
});

describe("createAuthenticator at boot", () => {
  test("a JWKS file that is missing or not a key set stops the start, naming AUTH_JWKS", async () => {
    const idp = await createIssuer();
    try {
      await expect(createAuthenticator(idp.authConfig("file", { jwks: `${idp.jwksPath}.missing` }), log)).rejects.toThrow(/AUTH_JWKS/);
      await writeFile(idp.jwksPath, JSON.stringify({ not: "a key set" }));
      await expect(createAuthenticator(idp.authConfig("file"), log)).rejects.toThrow(/AUTH_JWKS.*no "keys" array/);
      await writeFile(idp.jwksPath, "{ not json");
      await expect(createAuthenticator(idp.authConfig("file"), log)).rejects.toThrow(/AUTH_JWKS/);
    } finally {
      await idp.close();
    }
  });

  test("an unreachable JWKS URL does not stop the start; calls get UNAVAILABLE / AUTH_KEYS_UNAVAILABLE, not UNAUTHENTICATED", async () => {
    const idp = await createIssuer();
    try {
      const auth = await createAuthenticator(idp.authConfig("url", { jwks: await unreachableJwksUrl() }), log);
      expect(await refusal(auth.authenticate(`Bearer ${await idp.sign()}`))).toEqual({ code: Code.Unavailable, reason: AUTH_REASONS.keysUnavailable });
      // What needs no keys is still answered as usual.
      expect(await auth.authenticate(null)).toEqual({ kind: "anonymous", trusted: false });
      expect(await refusal(auth.authenticate("Basic xyz"))).toEqual(unauthenticated(AUTH_REASONS.malformed));
    } finally {
      await idp.close();
    }
  });

  test("a JWKS server answering 503 gives UNAVAILABLE; once it recovers the same authenticator verifies tokens", async () => {
    const idp = await createIssuer();
    try {
      idp.setJwksStatus(503);
      const auth = await createAuthenticator(idp.authConfig("url"), log);
      const token = await idp.sign({ sub: "alice" });
      expect(await refusal(auth.authenticate(`Bearer ${token}`))).toEqual({ code: Code.Unavailable, reason: AUTH_REASONS.keysUnavailable });
      idp.setJwksStatus(200);
      expect(await auth.authenticate(`Bearer ${token}`)).toEqual(user("alice"));
    } finally {
      await idp.close();
    }
  });
});

describe("key rotation", () => {
  let idp: TestIssuer;
  beforeEach(async () => {
    idp = await createIssuer({ alg: "ES256" });
  });
  afterEach(async () => {
    await idp.close();
  });

  test("local file: a token signed by a new key is accepted once the file lists its kid; the old key keeps working", async () => {
    const auth = await createAuthenticator(idp.authConfig("file", { jwksCooldownMs: 0 }), log);
    const oldToken = await idp.sign({ sub: "old" });
    const b = await idp.rotate({ publish: false });
    const newToken = await idp.sign({ sub: "new" });
    expect(await refusal(auth.authenticate(`Bearer ${newToken}`))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    await idp.publish(b);
    expect(await auth.authenticate(`Bearer ${newToken}`)).toEqual(user("new"));
    expect(await auth.authenticate(`Bearer ${oldToken}`)).toEqual(user("old"));
  });

  test("local file: within the cooldown the file is not re-read, after it it is", async () => {
    const auth = await createAuthenticator(idp.authConfig("file", { jwksCooldownMs: 800 }), log);
    const b = await idp.rotate({ publish: true });
    const token = `Bearer ${await idp.sign({ sub: "new" }, { key: b })}`;
    expect(await refusal(auth.authenticate(token))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    await sleep(900);
    expect(await auth.authenticate(token)).toEqual(user("new"));
  });

  test("local file: a rewrite within the same file-clock tick (unchanged mtime) is still noticed", async () => {
    // File timestamps come from a coarse clock: a write right after our read can keep the mtime.
    // Pinned here to one whole second so both versions of the file carry exactly the same one.
    const tick = new Date("2024-01-01T00:00:00Z");
    await utimes(idp.jwksPath, tick, tick);
    const auth = await createAuthenticator(idp.authConfig("file", { jwksCooldownMs: 0 }), log);
    const b = await idp.rotate({ publish: true });
    await utimes(idp.jwksPath, tick, tick);
    expect((await stat(idp.jwksPath)).mtimeMs).toBe(tick.getTime());
    expect(await auth.authenticate(`Bearer ${await idp.sign({ sub: "new" }, { key: b })}`)).toEqual(user("new"));
  });

  test("local file: a rewrite that is not a key set keeps the keys read before", async () => {
    const auth = await createAuthenticator(idp.authConfig("file", { jwksCooldownMs: 0 }), log);
    const oldToken = `Bearer ${await idp.sign({ sub: "old" })}`;
    await writeFile(idp.jwksPath, "{ half a file");
    const stranger = `Bearer ${await idp.sign({}, { key: await idp.newKey() })}`;
    expect(await refusal(auth.authenticate(stranger))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    expect(await auth.authenticate(oldToken)).toEqual(user("old"));
  });

  test("URL: key B is refused while the server has only A, accepted after it publishes B and the cooldown passes", async () => {
    const b = await idp.newKey("RS256");
    const auth = await createAuthenticator(idp.authConfig("url", { jwksCooldownMs: 1000 }), log);
    expect(idp.jwksRequests).toBe(1); // warmed at start
    const tokenA = `Bearer ${await idp.sign({ sub: "a-user" })}`;
    const tokenB = `Bearer ${await idp.sign({ sub: "b-user" }, { key: b })}`;
    expect(await auth.authenticate(tokenA)).toEqual(user("a-user"));
    expect(await refusal(auth.authenticate(tokenB))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    await idp.publish(b);
    // Still cooling down from the fetch at start: no new fetch, still refused.
    expect(await refusal(auth.authenticate(tokenB))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    expect(idp.jwksRequests).toBe(1);
    await sleep(1100);
    expect(await auth.authenticate(tokenB)).toEqual(user("b-user"));
    expect(idp.jwksRequests).toBe(2);
    expect(await auth.authenticate(tokenA)).toEqual(user("a-user"));
    // Known keys need no fetch.
    expect(idp.jwksRequests).toBe(2);
  });

  test("URL with no cooldown: an unknown kid refetches the set at once", async () => {
    const auth = await createAuthenticator(idp.authConfig("url", { jwksCooldownMs: 0 }), log);
    const b = await idp.rotate({ publish: false });
    const tokenB = `Bearer ${await idp.sign({ sub: "b-user" })}`;
    expect(await refusal(auth.authenticate(tokenB))).toEqual(unauthenticated(AUTH_REASONS.invalid));
    await idp.publish(b);
    expect(await auth.authenticate(tokenB)).toEqual(user("b-user"));
  });
});

describe("createAuthenticator, AUTH_MODE=none", () => {
  test("every caller is anonymous and trusted, whatever the header", async () => {
    const auth = await createAuthenticator({ mode: "none" }, log);
    expect(auth.mode).toBe("none");
    for (const header of [null, "", "Bearer abc", "Basic xyz"]) expect(await auth.authenticate(header)).toEqual({ kind: "anonymous", trusted: true });
    auth.close();
  });
});
