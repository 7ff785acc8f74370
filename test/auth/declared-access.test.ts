/**
 * The scopes an RPC's proto declares ((boxoffice.options.v1.access)) are what
 * the identity stage enforces: `required_scope` refuses before any work,
 * `any_user_scope` is whom a caller may act for by default.
 */
import { Code } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { AUTH_REASONS, createAuthenticator, SCOPES, type Authenticator } from "../../src/rpc/auth";
import { actingUser, actsForAnyone, IDENTITY_REASONS } from "../../src/rpc/identity";
import { createLogger } from "../../src/platform/logger";
import { CALLER_ADDRESS, handlerContext, runAuthInterceptor, thrown, user, useJwtAuthenticator } from "./identity-fixtures";

const jwt = useJwtAuthenticator();

/** Runs the auth interceptor over one unary call of `method`: whether the handler ran, the addresses counted, the refusal. */
async function call(auth: Authenticator, method: DescMethod, authorization?: string) {
  const { seen, ...rest } = await runAuthInterceptor(auth, method, authorization);
  return { handled: seen !== undefined, ...rest };
}

const charge = WalletService.method.chargeBalance;
const bearer = async (sub: string, ...scopes: string[]) => `Bearer ${await jwt.idp.sign({ sub, ...(scopes.length ? { scope: scopes.join(" ") } : {}) })}`;

describe("required_scope (ChargeBalance: wallet:charge) is enforced by the identity stage", () => {
  test("a verified caller without it is PERMISSION_DENIED / SCOPE_REQUIRED before the handler, validation or budgets", async () => {
    for (const token of [await bearer("fan"), await bearer("svc", SCOPES.service)])
      expect(await call(jwt.auth, charge, token)).toEqual({ handled: false, counted: [], code: Code.PermissionDenied, reason: IDENTITY_REASONS.scopeRequired });
  });

  test("with it the call goes on; with no bearer token at all it is UNAUTHENTICATED, counted", async () => {
    expect(await call(jwt.auth, charge, await bearer("payments", "other", SCOPES.walletCharge))).toEqual({ handled: true, counted: [] });
    expect(await call(jwt.auth, charge)).toEqual({ handled: false, counted: [CALLER_ADDRESS], code: Code.Unauthenticated, reason: AUTH_REASONS.missing });
  });

  test("AUTH_MODE=none checks no scope", async () => {
    const none = await createAuthenticator({ mode: "none" }, createLogger("silent"));
    expect(await call(none, charge)).toEqual({ handled: true, counted: [CALLER_ADDRESS] });
  });

  test("RPCs that declare no required_scope need none", async () => {
    expect(await call(jwt.auth, WalletService.method.getBalance, await bearer("fan"))).toEqual({ handled: true, counted: [] });
    expect(await call(jwt.auth, ReservationService.method.holdSeat, await bearer("fan"))).toEqual({ handled: true, counted: [] });
  });
});

describe("any_user_scope is whom a caller may act for, when the handler names no scope", () => {
  const mismatch = { code: Code.PermissionDenied, reason: IDENTITY_REASONS.userMismatch };

  test("ChargeBalance declares wallet:charge: its holder names any user, boxoffice:service does not", () => {
    expect(actingUser(handlerContext(charge, user("payments", SCOPES.walletCharge)), "bob")).toBe("bob");
    expect(thrown(() => actingUser(handlerContext(charge, user("svc", SCOPES.service)), "bob"))).toEqual(mismatch);
  });

  test("GetBalance and GetReservation declare boxoffice:service: the other way round", () => {
    expect(actingUser(handlerContext(WalletService.method.getBalance, user("svc", SCOPES.service)), "bob")).toBe("bob");
    expect(thrown(() => actingUser(handlerContext(WalletService.method.getBalance, user("payments", SCOPES.walletCharge)), "bob"))).toEqual(mismatch);
    expect(actsForAnyone(handlerContext(ReservationService.method.getReservation, user("svc", SCOPES.service)))).toBe(true);
    expect(actsForAnyone(handlerContext(ReservationService.method.getReservation, user("payments", SCOPES.walletCharge)))).toBe(false);
  });

  test("ListConcerts declares none: nobody acts for another user there", () => {
    expect(actsForAnyone(handlerContext(ConcertService.method.listConcerts, user("svc", SCOPES.service, SCOPES.walletCharge)))).toBe(false);
  });
});
