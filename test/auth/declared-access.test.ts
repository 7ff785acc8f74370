/**
 * The scopes an RPC's proto declares ((boxoffice.options.v1.access)) are what
 * the identity stage enforces: `required_scope` refuses before any work,
 * `any_user_scope` is whom a caller may act for by default.
 */
import { Code, ConnectError, createContextValues, createHandlerContext, type HandlerContext, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { AUTH_REASONS, createAuthenticator, SCOPES, type Authenticator } from "../../src/rpc/auth";
import { clientAddressKey, principalKey, type Principal } from "../../src/rpc/context";
import { actingUser, actsForAnyone, createAuthInterceptor, IDENTITY_REASONS } from "../../src/rpc/identity";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createIssuer, type TestIssuer } from "./jwt-fixtures";

let idp: TestIssuer;
let jwt: Authenticator;
beforeAll(async () => {
  idp = await createIssuer();
  jwt = await createAuthenticator(idp.authConfig("file"), createLogger("silent"));
});
afterAll(async () => {
  await idp.close();
});

/** Runs the auth interceptor over one unary call of `method`: whether the handler ran, the addresses counted, the refusal. */
async function call(auth: Authenticator, method: DescMethod, authorization?: string) {
  const counted: string[] = [];
  const contextValues = createContextValues().set(clientAddressKey, "10.0.0.9");
  const header = new Headers(authorization === undefined ? {} : { authorization });
  const req = {
    stream: false,
    service: method.parent,
    method,
    header,
    contextValues,
    requestMethod: "POST",
    url: "http://127.0.0.1/",
    signal: new AbortController().signal,
  };
  let handled = false;
  const next = async () => {
    handled = true;
    return {} as UnaryResponse;
  };
  const run = createAuthInterceptor(auth, async (address) => {
    counted.push(address);
  })(next as never);
  try {
    await run(req as unknown as UnaryRequest);
    return { handled, counted };
  } catch (err) {
    return { handled, counted, code: ConnectError.from(err).code, reason: errorReason(err) };
  }
}

const charge = WalletService.method.chargeBalance;
const bearer = async (sub: string, ...scopes: string[]) => `Bearer ${await idp.sign({ sub, ...(scopes.length ? { scope: scopes.join(" ") } : {}) })}`;

describe("required_scope (ChargeBalance: wallet:charge) is enforced by the identity stage", () => {
  test("a verified caller without it is PERMISSION_DENIED / SCOPE_REQUIRED before the handler, validation or budgets", async () => {
    for (const token of [await bearer("fan"), await bearer("svc", SCOPES.service)])
      expect(await call(jwt, charge, token)).toEqual({ handled: false, counted: [], code: Code.PermissionDenied, reason: IDENTITY_REASONS.scopeRequired });
  });

  test("with it the call goes on; with no bearer token at all it is UNAUTHENTICATED, counted", async () => {
    expect(await call(jwt, charge, await bearer("payments", "other", SCOPES.walletCharge))).toEqual({ handled: true, counted: [] });
    expect(await call(jwt, charge)).toEqual({ handled: false, counted: ["10.0.0.9"], code: Code.Unauthenticated, reason: AUTH_REASONS.missing });
  });

  test("AUTH_MODE=none checks no scope", async () => {
    const none = await createAuthenticator({ mode: "none" }, createLogger("silent"));
    expect(await call(none, charge)).toEqual({ handled: true, counted: ["10.0.0.9"] });
  });

  test("RPCs that declare no required_scope need none", async () => {
    expect(await call(jwt, WalletService.method.getBalance, await bearer("fan"))).toEqual({ handled: true, counted: [] });
    expect(await call(jwt, ReservationService.method.holdSeat, await bearer("fan"))).toEqual({ handled: true, counted: [] });
  });
});

describe("any_user_scope is whom a caller may act for, when the handler names no scope", () => {
  function ctxFor(method: DescMethod, principal: Principal): HandlerContext {
    const ctx = createHandlerContext({ service: method.parent, method, protocolName: "connect", requestMethod: "POST", url: "http://127.0.0.1/" });
    ctx.values.set(principalKey, principal);
    return ctx;
  }
  const user = (userId: string, ...scopes: string[]): Principal => ({ kind: "user", userId, scopes: new Set(scopes) });
  /** The code and reason `fn` was refused with. */
  function refusal(fn: () => unknown): { code: Code; reason?: string } {
    try {
      fn();
    } catch (err) {
      return { code: ConnectError.from(err).code, reason: errorReason(err) };
    }
    throw new Error("expected a refusal");
  }
  const mismatch = { code: Code.PermissionDenied, reason: IDENTITY_REASONS.userMismatch };

  test("ChargeBalance declares wallet:charge: its holder names any user, boxoffice:service does not", () => {
    expect(actingUser(ctxFor(charge, user("payments", SCOPES.walletCharge)), "bob")).toBe("bob");
    expect(refusal(() => actingUser(ctxFor(charge, user("svc", SCOPES.service)), "bob"))).toEqual(mismatch);
  });

  test("GetBalance and GetReservation declare boxoffice:service: the other way round", () => {
    expect(actingUser(ctxFor(WalletService.method.getBalance, user("svc", SCOPES.service)), "bob")).toBe("bob");
    expect(refusal(() => actingUser(ctxFor(WalletService.method.getBalance, user("payments", SCOPES.walletCharge)), "bob"))).toEqual(mismatch);
    expect(actsForAnyone(ctxFor(ReservationService.method.getReservation, user("svc", SCOPES.service)))).toBe(true);
    expect(actsForAnyone(ctxFor(ReservationService.method.getReservation, user("payments", SCOPES.walletCharge)))).toBe(false);
  });

  test("ListConcerts declares none: nobody acts for another user there", () => {
    expect(actsForAnyone(ctxFor(ConcertService.method.listConcerts, user("svc", SCOPES.service, SCOPES.walletCharge)))).toBe(false);
  });
});
