import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";

/** Correlates a call's log line with what the client saw (`x-request-id`). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The client's address: the socket's peer, or the trusted proxy's X-Forwarded-For entry. */
export const clientAddressKey = createContextKey<string>("unknown", { description: "client address" });

/**
 * Who is calling, as the authentication stage found out. In `AUTH_MODE=none`
 * nobody is verified and the user ids in requests are trusted (`trusted: true`).
 */
export type Principal = { kind: "anonymous"; trusted: boolean } | { kind: "user"; userId: string; scopes: ReadonlySet<string> };

export const principalKey = createContextKey<Principal>({ kind: "anonymous", trusted: false }, { description: "authenticated caller" });

/** The user a gated call acts for, taken from its queue token by the gate. */
export interface Caller {
  userId: string;
  token: string;
}

export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller from the queue token" });

/** The acting user of a gated call. The gate guarantees one; its absence is a wiring bug, refused, never guessed. */
export function requireCaller(ctx: HandlerContext): Caller {
  const c = ctx.values.get(callerKey);
  if (!c) throw new ConnectError("this call needs an ACTIVE queue token", Code.Unauthenticated);
  return c;
}
