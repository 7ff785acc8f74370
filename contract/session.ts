/**
 * How the kit talks to the server: connect-es clients over connect-node
 * transports, built from the image's service descriptors (no generated code).
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { ConnectError, createClient, type CallOptions, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Image } from "./image.js";

export type Protocol = "grpc" | "connect" | "grpc-web";

export function createTransport(protocol: Protocol, baseUrl: string): Transport {
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl });
    // Connect and gRPC-Web as a browser speaks them: HTTP/1.1, and JSON for Connect.
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
  }
}

/** A response or stream message: the kit reads fields by their JSON-less local names. */
// biome-ignore lint/suspicious/noExplicitAny: messages are built at run time from the image's descriptors (no generated types), so their fields have no static type; a check that reads a wrong shape fails on the spot.
export type Msg = Record<string, any>;

export interface CallAs {
  /** x-queue-token; none when omitted. */
  queueToken?: string;
  /** Bearer token; the session's own when omitted, none when null. */
  bearer?: string | null;
  signal?: AbortSignal;
}

type UnaryFn = (req: Msg, opts?: CallOptions) => Promise<Msg>;
type StreamFn = (req: Msg, opts?: CallOptions) => AsyncIterable<Msg>;

export interface Session {
  image: Image;
  protocol: Protocol;
  /** The user the calls act for (the bearer token's sub in jwt mode). */
  user: string;
  /** The user's bearer token (jwt mode). */
  bearer?: string;
  /** A bearer token with the wallet:charge scope (jwt mode). */
  chargeBearer?: string;
  mode: "none" | "jwt";
  unary(method: DescMethod, req: Msg, as?: CallAs): Promise<Msg>;
  stream(method: DescMethod, req: Msg, as?: CallAs): AsyncIterable<Msg>;
  /** The refusal a call ends with; throws if it succeeds. */
  refusal(method: DescMethod, req: Msg, as?: CallAs): Promise<ConnectError>;
}

export interface SessionOptions {
  image: Image;
  protocol: Protocol;
  baseUrl: string;
  user: string;
  mode: "none" | "jwt";
  bearer?: string;
  chargeBearer?: string;
  timeoutMs: number;
}

export function createSession(o: SessionOptions): Session {
  const transport = createTransport(o.protocol, o.baseUrl);
  const clients = new Map<DescService, Record<string, UnaryFn | StreamFn>>();
  const fn = (method: DescMethod) => {
    let c = clients.get(method.parent);
    if (!c) {
      c = createClient(method.parent, transport) as unknown as Record<string, UnaryFn | StreamFn>;
      clients.set(method.parent, c);
    }
    return c[method.localName];
  };
  const options = (as: CallAs = {}, timeout = true): CallOptions => {
    const headers = new Headers();
    if (as.queueToken !== undefined) headers.set("x-queue-token", as.queueToken);
    const bearer = as.bearer === undefined ? o.bearer : as.bearer;
    if (bearer) headers.set("authorization", `Bearer ${bearer}`);
    return { headers, signal: as.signal, ...(timeout && { timeoutMs: o.timeoutMs }) };
  };
  const session: Session = {
    image: o.image,
    protocol: o.protocol,
    user: o.user,
    bearer: o.bearer,
    chargeBearer: o.chargeBearer,
    mode: o.mode,
    unary: (method, req, as) => (fn(method) as UnaryFn)(req, options(as)),
    // A stream lives as long as the caller wants it to: it ends by `as.signal`.
    stream: (method, req, as) => (fn(method) as StreamFn)(req, options(as, false)),
    async refusal(method, req, as) {
      try {
        if (method.methodKind === "server_streaming") {
          for await (const _ of session.stream(method, req, { ...as, signal: as?.signal ?? AbortSignal.timeout(o.timeoutMs) })) break;
        } else await session.unary(method, req, as);
      } catch (err) {
        return ConnectError.from(err);
      }
      throw new Error(`${method.name} succeeded where a refusal was expected`);
    },
  };
  return session;
}
