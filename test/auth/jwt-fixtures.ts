/**
 * A test identity provider: key pairs, a published JWKS (a file in a temp
 * dir AND the same set served over loopback HTTP), and signed tokens.
 *
 *   const idp = await createIssuer();               // one ES256 key, published
 *   const auth = await createAuthenticator(idp.authConfig("file"), log);
 *   await auth.authenticate(`Bearer ${await idp.sign({ sub: "alice", scope: "a b" })}`);
 *   await idp.close();
 *
 * Claims: `sign(claims)` starts from { iss, aud, sub: "user-1", iat: now, exp: now + 300 }
 * and applies `claims` over it; a claim set to `undefined` is left out
 * (`sign({ exp: undefined })` has no exp). Times are seconds (see `epoch()`).
 */
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import type { AuthConfig } from "../../src/config";

export type SigningAlg = "RS256" | "RS384" | "RS512" | "PS256" | "ES256" | "ES384" | "ES512" | "EdDSA";

export type JwtAuthConfig = Extract<AuthConfig, { mode: "jwt" }>;

export interface TestKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public half as published in the JWKS (kid, alg, use: "sig"). */
  publicJwk: JWK;
}

export interface SignOptions {
  /** Sign with this key instead of the issuer's current one (it need not be published). */
  key?: TestKey;
  /** The header's kid: a different string than the key's, or null to leave kid out. */
  kid?: string | null;
  /** Extra protected header parameters. */
  header?: Record<string, unknown>;
}

export interface TestIssuer {
  /** The `iss` tokens carry and the config expects. */
  readonly issuer: string;
  /** The `aud` tokens carry and the config expects. */
  readonly audience: string;
  /** The JWKS file (rewritten atomically on every publish). */
  readonly jwksPath: string;
  /** http://127.0.0.1:<port>/.well-known/jwks.json, serving the same key set. */
  readonly jwksUrl: string;
  /** The key `sign` uses by default (the newest from `rotate`). */
  readonly key: TestKey;
  /** The keys currently in the JWKS. */
  readonly published: readonly TestKey[];
  /** GET requests the JWKS server has answered so far. */
  readonly jwksRequests: number;

  /** A compact JWS over the default claims with `claims` applied. */
  sign(claims?: JWTPayload, opts?: SignOptions): Promise<string>;
  /** A new key pair, not published, not the default. */
  newKey(alg?: SigningAlg, kid?: string): Promise<TestKey>;
  /**
   * A new key becomes the one `sign` uses. Published next to the old ones
   * unless `publish: false` (then call `publish()` later); `retireOthers`
   * removes the old keys from the JWKS.
   */
  rotate(opts?: { alg?: SigningAlg; kid?: string; publish?: boolean; retireOthers?: boolean }): Promise<TestKey>;
  /** Adds these keys (default: the current key) to the JWKS and rewrites the file and the served set. */
  publish(...keys: TestKey[]): Promise<void>;
  /** Removes the keys with these kids from the JWKS. */
  unpublish(...kids: string[]): Promise<void>;
  /** The status the JWKS server answers with (200 serves the set; anything else an error body). */
  setJwksStatus(status: number): void;
  /** An AUTH_MODE=jwt config pointing at the file or the URL. Defaults: 30 s tolerance, no reload cooldown. */
  authConfig(source: "file" | "url", overrides?: Partial<Omit<JwtAuthConfig, "mode">>): JwtAuthConfig;

  /** A token with `alg: none` and an empty signature (over the default claims). */
  forgeUnsigned(claims?: JWTPayload): string;
  /** HS256 keyed with the public key's SPKI PEM text: the classic RS/HS key-confusion forgery. */
  forgeHmacWithPublicKey(claims?: JWTPayload, key?: TestKey): Promise<string>;

  /** Stops the server and removes the temp dir. */
  close(): Promise<void>;
}

export interface IssuerOptions {
  alg?: SigningAlg;
  issuer?: string;
  audience?: string;
  /** The first key's kid (default: random). */
  kid?: string;
}

/** Now, in seconds since the epoch (what exp, nbf and iat count). */
export const epoch = (): number => Math.floor(Date.now() / 1000);

export async function createKey(alg: SigningAlg = "ES256", kid: string = `k-${randomUUID().slice(0, 8)}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

export async function createIssuer(opts: IssuerOptions = {}): Promise<TestIssuer> {
  const issuer = opts.issuer ?? "https://idp.test/";
  const audience = opts.audience ?? "boxoffice-test";
  const dir = await mkdtemp(join(tmpdir(), "boxoffice-jwks-"));
  const jwksPath = join(dir, "jwks.json");

  let current = await createKey(opts.alg ?? "ES256", opts.kid);
  let published: TestKey[] = [];
  let body = "";
  let status = 200;
  let requests = 0;

  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/.well-known/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    requests++;
    if (status !== 200) {
      res.writeHead(status, { "content-type": "text/plain" }).end("unavailable");
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "no-store" }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;

  const write = async () => {
    body = JSON.stringify({ keys: published.map((k) => k.publicJwk) });
    // Atomic: a reader never sees half a file.
    const tmp = `${jwksPath}.${randomUUID()}.tmp`;
    await writeFile(tmp, body);
    await rename(tmp, jwksPath);
  };

  const defaults = (claims: JWTPayload): JWTPayload => {
    const now = epoch();
    const merged: JWTPayload = { iss: issuer, aud: audience, sub: "user-1", iat: now, exp: now + 300, ...claims };
    return Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
  };

  const self: TestIssuer = {
    issuer,
    audience,
    jwksPath,
    jwksUrl,
    get key() {
      return current;
    },
    get published() {
      return [...published];
    },
    get jwksRequests() {
      return requests;
    },
    async sign(claims = {}, o = {}) {
      const key = o.key ?? current;
      const kid = o.kid === undefined ? key.kid : o.kid;
      const header = { ...o.header, alg: key.alg, typ: "JWT", ...(kid === null ? {} : { kid }) };
      // SignJWT would add nothing we do not set: the payload is exactly `defaults(claims)`.
      return new SignJWT(defaults(claims)).setProtectedHeader(header).sign(key.privateKey);
    },
    newKey: (alg = current.alg, kid) => createKey(alg, kid),
    async rotate(o = {}) {
      const key = await createKey(o.alg ?? current.alg, o.kid);
      current = key;
      if (o.retireOthers) published = [];
      if (o.publish ?? true) await self.publish(key);
      else if (o.retireOthers) await write();
      return key;
    },
    async publish(...keys) {
      for (const k of keys.length ? keys : [current]) if (!published.includes(k)) published.push(k);
      await write();
    },
    async unpublish(...kids) {
      published = published.filter((k) => !kids.includes(k.kid));
      await write();
    },
    setJwksStatus(s) {
      status = s;
    },
    authConfig(source, overrides = {}) {
      return {
        mode: "jwt",
        jwks: source === "file" ? jwksPath : jwksUrl,
        issuer,
        audience,
        clockToleranceMs: 30_000,
        jwksCooldownMs: 0,
        ...overrides,
      };
    },
    forgeUnsigned(claims = {}) {
      const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
      return `${enc({ alg: "none", typ: "JWT" })}.${enc(defaults(claims))}.`;
    },
    async forgeHmacWithPublicKey(claims = {}, key = current) {
      const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
      const input = `${enc({ alg: "HS256", typ: "JWT", kid: key.kid })}.${enc(defaults(claims))}`;
      const secret = await exportSPKI(key.publicKey);
      return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  await self.publish(current);
  return self;
}

/** A loopback URL nothing listens on (a port bound and released just now). */
export async function unreachableJwksUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}/.well-known/jwks.json`;
}
