import { Code, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { domainError } from "../platform/errors.js";
import { Reason } from "../platform/reasons.js";
import { AUTH_REASONS, SCOPES, type Authenticator } from "./auth.js";
import { clientAddressKey, principalKey, type Principal } from "./context.js";
import { accessOf, checkAccessDeclared, methodAccess } from "./method-options.js";

export const IDENTITY_REASONS = {
  /** The request names a user other than the authenticated caller. */
  userMismatch: Reason.USER_MISMATCH,
  /** The caller's token lacks a scope this RPC needs. */
  scopeRequired: Reason.SCOPE_REQUIRED,
  /** The queue token belongs to another user than the authenticated caller. */
  queueTokenNotYours: Reason.QUEUE_TOKEN_NOT_YOURS,
  /** AUTH_MODE=none and the request does not say which user it is for. */
  userRequired: Reason.USER_ID_REQUIRED,
} as const;

/**
 * Anyone may call it without a bearer token: gRPC health and reflection, and
 * the RPCs declared `auth: AUTH_PUBLIC`. An RPC this server does not know is not.
 */
export function isPublic(service: string, method: string): boolean {
  return accessOf(service, method)?.public ?? false;
}

/** Called for every call that no verified bearer token stands behind (per client address). */
export type UnauthenticatedHook = (address: string) => Promise<void>;

/**
 * Puts the caller in the call context before any work. In `jwt` mode every
 * RPC but the public ones needs a verified bearer token, and one that declares
 * a `required_scope` needs that scope too (PERMISSION_DENIED SCOPE_REQUIRED);
 * a refused call does nothing. What each RPC needs is its proto's
 * `(boxoffice.options.v1.access)`. Calls without a verified caller are counted
 * per client address (`onUnauthenticated`), so nobody can flood the port anonymously.
 */
export function createAuthInterceptor(auth: Authenticator, onUnauthenticated: UnauthenticatedHook): Interceptor {
  checkAccessDeclared();
  return (next) => async (req) => {
    const declared = methodAccess(req.method);
    let principal: Principal;
    try {
      principal = await auth.authenticate(req.header.get("authorization"));
    } catch (err) {
      await onUnauthenticated(req.contextValues.get(clientAddressKey));
      throw err;
    }
    if (principal.kind === "anonymous") {
      await onUnauthenticated(req.contextValues.get(clientAddressKey));
      if (!principal.trusted && !declared.public)
        throw domainError(Code.Unauthenticated, AUTH_REASONS.missing, "this call needs `authorization: Bearer <JWT>`");
    }
    if (declared.requiredScope) checkScope(principal, declared.requiredScope);
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

function hasScope(p: Principal, scope: string): boolean {
  return p.kind === "user" && p.scopes.has(scope);
}

/** The scope this RPC's proto declares as letting a caller act for other users (`any_user_scope`). */
const declaredAnyUserScope = (ctx: HandlerContext): string | undefined => methodAccess(ctx.method).anyUserScope;

/**
 * The caller may act for users other than itself on this RPC: it holds
 * `scope` (default: the RPC's declared `any_user_scope`).
 */
export function actsForAnyone(ctx: HandlerContext, scope: string | undefined = declaredAnyUserScope(ctx)): boolean {
  const p = ctx.values.get(principalKey);
  return (p.kind === "anonymous" && p.trusted) || (scope !== undefined && hasScope(p, scope));
}

/**
 * The user a request that names one acts for. The caller itself unless it
 * holds `scope` (default: the RPC's declared `any_user_scope`, e.g.
 * `boxoffice:service`); an empty `requested` means the caller. In
 * AUTH_MODE=none the request is trusted and must name the user.
 */
export function actingUser(ctx: HandlerContext, requested: string, scope: string | undefined = declaredAnyUserScope(ctx)): string {
  const p = ctx.values.get(principalKey);
  if (p.kind === "anonymous") {
    if (!p.trusted) throw domainError(Code.Unauthenticated, AUTH_REASONS.missing, "this call needs `authorization: Bearer <JWT>`");
    if (!requested) throw domainError(Code.InvalidArgument, IDENTITY_REASONS.userRequired, "user_id is required when the server does not authenticate callers");
    return requested;
  }
  if (!requested || requested === p.userId) return p.userId;
  if (scope !== undefined && p.scopes.has(scope)) return requested;
  throw domainError(
    Code.PermissionDenied,
    IDENTITY_REASONS.userMismatch,
    "user_id must be the authenticated caller (the token's sub)",
    scope === undefined ? {} : { scope },
  );
}

function checkScope(p: Principal, scope: string): void {
  if (p.kind === "anonymous" && p.trusted) return;
  if (!hasScope(p, scope)) throw domainError(Code.PermissionDenied, IDENTITY_REASONS.scopeRequired, `this call needs the ${scope} scope`, { scope });
}

/** Refuses a caller whose token lacks `scope` (in AUTH_MODE=none nothing is checked). */
export function requireScope(ctx: HandlerContext, scope: string): void {
  checkScope(ctx.values.get(principalKey), scope);
}

/**
 * A queue token's user must be the caller, unless the caller holds `scope`
 * (the RPC's declared `any_user_scope`; `boxoffice:service` on every RPC that
 * takes a queue token) and so acts for that user. Read from the principal in
 * the call context.
 */
export function checkTokenOwner(principal: Principal, tokenUserId: string, scope: string | undefined = SCOPES.service): void {
  if (principal.kind === "anonymous") return; // trusted (none mode); untrusted never gets this far
  if (principal.userId === tokenUserId || (scope !== undefined && principal.scopes.has(scope))) return;
  throw domainError(Code.PermissionDenied, IDENTITY_REASONS.queueTokenNotYours, "the queue token belongs to another user");
}
