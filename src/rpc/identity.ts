import { Code, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { domainError } from "../platform/errors.js";
import { Reason } from "../platform/reasons.js";
import { AUTH_REASONS, SCOPES, type Authenticator } from "./auth.js";
import { clientAddressKey, principalKey, type Principal } from "./context.js";
import { REFLECTION_SERVICES } from "./reflection.js";

/** Services anyone may call without a bearer token. */
const PUBLIC_SERVICES = new Set([Health.typeName, ...REFLECTION_SERVICES]);
/** Single RPCs anyone may call: the catalog is what the on-sale page shows before sign-in. */
const PUBLIC_PROCEDURES = new Set([`${ConcertService.typeName}/${ConcertService.method.listConcerts.name}`]);

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

export function isPublic(service: string, method: string): boolean {
  return PUBLIC_SERVICES.has(service) || PUBLIC_PROCEDURES.has(`${service}/${method}`);
}

/** Called for every call that no verified bearer token stands behind (per client address). */
export type UnauthenticatedHook = (address: string) => Promise<void>;

/**
 * Puts the caller in the call context before any work. In `jwt` mode every
 * RPC but the public ones needs a verified bearer token; a refused call does
 * nothing. Calls without a verified caller are counted per client address
 * (`onUnauthenticated`), so nobody can flood the port anonymously.
 */
export function createAuthInterceptor(auth: Authenticator, onUnauthenticated: UnauthenticatedHook): Interceptor {
  return (next) => async (req) => {
    let principal: Principal;
    try {
      principal = await auth.authenticate(req.header.get("authorization"));
    } catch (err) {
      await onUnauthenticated(req.contextValues.get(clientAddressKey));
      throw err;
    }
    if (principal.kind === "anonymous") {
      await onUnauthenticated(req.contextValues.get(clientAddressKey));
      if (!principal.trusted && !isPublic(req.service.typeName, req.method.name))
        throw domainError(Code.Unauthenticated, AUTH_REASONS.missing, "this call needs `authorization: Bearer <JWT>`");
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

function hasScope(p: Principal, scope: string): boolean {
  return p.kind === "user" && p.scopes.has(scope);
}

/** The caller may act for users other than itself on this RPC. */
export function actsForAnyone(ctx: HandlerContext, scope: string = SCOPES.service): boolean {
  const p = ctx.values.get(principalKey);
  return (p.kind === "anonymous" && p.trusted) || hasScope(p, scope);
}

/**
 * The user a request that names one acts for. The caller itself unless it
 * holds `scope` (default `boxoffice:service`); an empty `requested` means the
 * caller. In AUTH_MODE=none the request is trusted and must name the user.
 */
export function actingUser(ctx: HandlerContext, requested: string, scope: string = SCOPES.service): string {
  const p = ctx.values.get(principalKey);
  if (p.kind === "anonymous") {
    if (!p.trusted) throw domainError(Code.Unauthenticated, AUTH_REASONS.missing, "this call needs `authorization: Bearer <JWT>`");
    if (!requested) throw domainError(Code.InvalidArgument, IDENTITY_REASONS.userRequired, "user_id is required when the server does not authenticate callers");
    return requested;
  }
  if (!requested || requested === p.userId) return p.userId;
  if (p.scopes.has(scope)) return requested;
  throw domainError(Code.PermissionDenied, IDENTITY_REASONS.userMismatch, "user_id must be the authenticated caller (the token's sub)", {
    scope,
  });
}

/** Refuses a caller whose token lacks `scope` (in AUTH_MODE=none nothing is checked). */
export function requireScope(ctx: HandlerContext, scope: string): void {
  const p = ctx.values.get(principalKey);
  if (p.kind === "anonymous" && p.trusted) return;
  if (!hasScope(p, scope)) throw domainError(Code.PermissionDenied, IDENTITY_REASONS.scopeRequired, `this call needs the ${scope} scope`, { scope });
}

/**
 * A queue token's user must be the caller, unless the caller is a trusted
 * service acting for that user. Read from the principal in the call context.
 */
export function checkTokenOwner(principal: Principal, tokenUserId: string): void {
  if (principal.kind === "anonymous") return; // trusted (none mode); untrusted never gets this far
  if (principal.userId === tokenUserId || principal.scopes.has(SCOPES.service)) return;
  throw domainError(Code.PermissionDenied, IDENTITY_REASONS.queueTokenNotYours, "the queue token belongs to another user");
}
