/**
 * The identity stage without a server: principals, the handler context a
 * handler would see, and one unary call through the auth interceptor.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import {
  type Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { errorReason } from "../../src/platform/errors";
import { createLogger } from "../../src/platform/logger";
import { createAuthenticator, type Authenticator } from "../../src/rpc/auth";
import { clientAddressKey, principalKey, type Principal } from "../../src/rpc/context";
import { createAuthInterceptor } from "../../src/rpc/identity";
import { createIssuer, type TestIssuer } from "./jwt-fixtures";

/**
 * A test identity provider and an AUTH_MODE=jwt authenticator trusting it
 * (through its JWKS file), made before the suite's tests and closed after:
 * read `idp` and `auth` inside tests, not at the top level.
 */
export function useJwtAuthenticator(): { readonly idp: TestIssuer; readonly auth: Authenticator } {
  const made = {} as { idp: TestIssuer; auth: Authenticator };
  beforeAll(async () => {
    made.idp = await createIssuer();
    made.auth = await createAuthenticator(made.idp.authConfig("file"), createLogger("silent"));
  });
  afterAll(() => made.idp?.close());
  return made;
}

/** The client address every call made by `runAuthInterceptor` comes from. */
export const CALLER_ADDRESS = "10.0.0.7";

export const user = (userId: string, ...scopes: string[]): Principal => ({ kind: "user", userId, scopes: new Set(scopes) });

/** A handler context for `method`, with the principal the auth interceptor would have put there (none: nobody authenticated). */
export function handlerContext(method: DescMethod, principal?: Principal): HandlerContext {
  const ctx = createHandlerContext({
    service: method.parent,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: `http://127.0.0.1/${method.parent.typeName}/${method.name}`,
  });
  if (principal) ctx.values.set(principalKey, principal);
  return ctx;
}

/** The code and ErrorInfo reason `fn` threw; fails if it returned. */
export function thrown(fn: () => unknown): { code: Code; reason?: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return { code: ConnectError.from(err).code, reason: errorReason(err) };
  }
  throw new Error("expected a throw");
}

export interface InterceptedCall {
  /** The principal the handler saw; undefined: the handler never ran. */
  seen?: Principal;
  /** The addresses counted as unauthenticated. */
  counted: string[];
  code?: Code;
  reason?: string;
}

/** Runs the auth interceptor over one minimal unary call of `method` from CALLER_ADDRESS. */
export async function runAuthInterceptor(auth: Authenticator, method: DescMethod, authorization?: string): Promise<InterceptedCall> {
  const counted: string[] = [];
  const req = {
    stream: false,
    service: method.parent,
    method,
    header: new Headers(authorization === undefined ? {} : { authorization }),
    contextValues: createContextValues().set(clientAddressKey, CALLER_ADDRESS),
    requestMethod: "POST",
    url: "http://127.0.0.1/",
    signal: new AbortController().signal,
  };
  let seen: Principal | undefined;
  const next = async (r: UnaryRequest) => {
    seen = r.contextValues.get(principalKey);
    return {} as UnaryResponse;
  };
  const run = createAuthInterceptor(auth, async (address) => {
    counted.push(address);
  })(next as never);
  try {
    await run(req as unknown as UnaryRequest);
    return { seen, counted };
  } catch (err) {
    return { seen, counted, code: ConnectError.from(err).code, reason: errorReason(err) };
  }
}
