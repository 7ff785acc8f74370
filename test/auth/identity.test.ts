import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { Health } from "../../gen/grpc/health/v1/health_pb";
import { AUTH_REASONS, createAuthenticator, SCOPES } from "../../src/rpc/auth";
import type { Principal } from "../../src/rpc/context";
import { actingUser, actsForAnyone, checkTokenOwner, IDENTITY_REASONS, isPublic, requireScope } from "../../src/rpc/identity";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { CALLER_ADDRESS, handlerContext, runAuthInterceptor, thrown, user, useJwtAuthenticator } from "./identity-fixtures";

const trusted: Principal = { kind: "anonymous", trusted: true };
const untrusted: Principal = { kind: "anonymous", trusted: false };

/** A handler context for WalletService/GetBalance with the principal the auth interceptor would have put there. */
const ctxFor = (principal: Principal): HandlerContext => handlerContext(WalletService.method.getBalance, principal);

describe("actingUser", () => {
  test("the caller itself: the same user id, or none requested", () => {
    expect(actingUser(ctxFor(user("alice")), "alice")).toBe("alice");
    expect(actingUser(ctxFor(user("alice")), "")).toBe("alice");
  });

  test("another user without the scope: PERMISSION_DENIED / USER_MISMATCH", () => {
    expect(thrown(() => actingUser(ctxFor(user("alice", "wallet:charge")), "bob"))).toEqual({
      code: Code.PermissionDenied,
      reason: IDENTITY_REASONS.userMismatch,
    });
    // Ids are compared exactly.
    expect(thrown(() => actingUser(ctxFor(user("alice")), "Alice")).reason).toBe(IDENTITY_REASONS.userMismatch);
  });

  test("another user with boxoffice:service (the default scope)", () => {
    expect(actingUser(ctxFor(user("svc", SCOPES.service)), "bob")).toBe("bob");
    expect(actingUser(ctxFor(user("svc", SCOPES.service)), "")).toBe("svc");
  });

  test("a named scope replaces the default: only that scope acts for others", () => {
    expect(actingUser(ctxFor(user("pay", SCOPES.walletCharge)), "bob", SCOPES.walletCharge)).toBe("bob");
    expect(thrown(() => actingUser(ctxFor(user("svc", SCOPES.service)), "bob", SCOPES.walletCharge)).reason).toBe(IDENTITY_REASONS.userMismatch);
  });

  test("AUTH_MODE=none: the requested user is trusted, but must be named (INVALID_ARGUMENT / USER_ID_REQUIRED)", () => {
    expect(actingUser(ctxFor(trusted), "bob")).toBe("bob");
    expect(thrown(() => actingUser(ctxFor(trusted), ""))).toEqual({ code: Code.InvalidArgument, reason: IDENTITY_REASONS.userRequired });
  });

  test("an unverified caller: UNAUTHENTICATED / AUTH_TOKEN_MISSING, whatever it asks for", () => {
    expect(thrown(() => actingUser(ctxFor(untrusted), "bob"))).toEqual({ code: Code.Unauthenticated, reason: AUTH_REASONS.missing });
    expect(thrown(() => actingUser(ctxFor(untrusted), ""))).toEqual({ code: Code.Unauthenticated, reason: AUTH_REASONS.missing });
  });

  test("a context nobody authenticated (no principal set) is an unverified caller", () => {
    const ctx = handlerContext(WalletService.method.getBalance);
    expect(thrown(() => actingUser(ctx, "bob")).code).toBe(Code.Unauthenticated);
  });
});

describe("actsForAnyone", () => {
  test("trusted (none mode) and boxoffice:service holders do; plain users and unverified callers do not", () => {
    expect(actsForAnyone(ctxFor(trusted))).toBe(true);
    expect(actsForAnyone(ctxFor(user("svc", SCOPES.service)))).toBe(true);
    expect(actsForAnyone(ctxFor(user("alice")))).toBe(false);
    expect(actsForAnyone(ctxFor(user("alice", SCOPES.walletCharge)))).toBe(false);
    expect(actsForAnyone(ctxFor(user("alice", SCOPES.walletCharge)), SCOPES.walletCharge)).toBe(true);
    expect(actsForAnyone(ctxFor(untrusted))).toBe(false);
  });
});

describe("requireScope", () => {
  test("passes with the scope, and in AUTH_MODE=none", () => {
    expect(() => requireScope(ctxFor(user("pay", SCOPES.walletCharge, "other")), SCOPES.walletCharge)).not.toThrow();
    expect(() => requireScope(ctxFor(trusted), SCOPES.walletCharge)).not.toThrow();
  });

  test("without it: PERMISSION_DENIED / SCOPE_REQUIRED, naming the scope", () => {
    let err: unknown;
    try {
      requireScope(ctxFor(user("alice", SCOPES.service)), SCOPES.walletCharge);
    } catch (e) {
      err = e;
    }
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe(IDENTITY_REASONS.scopeRequired);
    expect(ConnectError.from(err).rawMessage).toContain(SCOPES.walletCharge);
    expect(thrown(() => requireScope(ctxFor(untrusted), SCOPES.walletCharge))).toEqual({ code: Code.PermissionDenied, reason: IDENTITY_REASONS.scopeRequired });
  });
});

describe("checkTokenOwner", () => {
  test("the token's own user, a boxoffice:service caller, and AUTH_MODE=none pass", () => {
    expect(() => checkTokenOwner(user("alice"), "alice")).not.toThrow();
    expect(() => checkTokenOwner(user("svc", SCOPES.service), "alice")).not.toThrow();
    expect(() => checkTokenOwner(trusted, "alice")).not.toThrow();
  });

  test("another user's token: PERMISSION_DENIED / QUEUE_TOKEN_NOT_YOURS (wallet:charge is not enough)", () => {
    expect(thrown(() => checkTokenOwner(user("bob"), "alice"))).toEqual({ code: Code.PermissionDenied, reason: IDENTITY_REASONS.queueTokenNotYours });
    expect(thrown(() => checkTokenOwner(user("bob", SCOPES.walletCharge), "alice")).reason).toBe(IDENTITY_REASONS.queueTokenNotYours);
  });
});

describe("isPublic", () => {
  test("health and ListConcerts are public; the wallet is not", () => {
    expect(isPublic(Health.typeName, "Check")).toBe(true);
    expect(isPublic(ConcertService.typeName, ConcertService.method.listConcerts.name)).toBe(true);
    expect(isPublic(WalletService.typeName, WalletService.method.getBalance.name)).toBe(false);
  });
});

describe("createAuthInterceptor", () => {
  const jwt = useJwtAuthenticator();
  const getBalance = WalletService.method.getBalance;
  const listConcerts = ConcertService.method.listConcerts;

  test("a verified caller reaches the handler with its principal and is not counted as unauthenticated", async () => {
    const r = await runAuthInterceptor(jwt.auth, getBalance, `Bearer ${await jwt.idp.sign({ sub: "alice", scope: "x y" })}`);
    expect(r).toEqual({ seen: user("alice", "x", "y"), counted: [] });
  });

  test("no token on a non-public RPC: UNAUTHENTICATED / AUTH_TOKEN_MISSING, the handler never runs, the address is counted", async () => {
    const r = await runAuthInterceptor(jwt.auth, getBalance);
    expect(r).toEqual({ seen: undefined, counted: [CALLER_ADDRESS], code: Code.Unauthenticated, reason: AUTH_REASONS.missing });
  });

  test("no token on a public RPC: runs as an unverified caller, counted", async () => {
    expect(await runAuthInterceptor(jwt.auth, listConcerts)).toEqual({ seen: untrusted, counted: [CALLER_ADDRESS] });
  });

  test("a refused token, even on a public RPC: the refusal, counted, the handler never runs", async () => {
    const r = await runAuthInterceptor(jwt.auth, listConcerts, "Bearer abc");
    expect(r).toEqual({ seen: undefined, counted: [CALLER_ADDRESS], code: Code.Unauthenticated, reason: AUTH_REASONS.malformed });
  });

  test("AUTH_MODE=none: every call runs as a trusted caller, counted per address", async () => {
    const none = await createAuthenticator({ mode: "none" }, createLogger("silent"));
    expect(await runAuthInterceptor(none, getBalance)).toEqual({ seen: trusted, counted: [CALLER_ADDRESS] });
  });
});
