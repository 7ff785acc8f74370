import type { Http2Server, Http2Session } from "node:http2";
import type { Duplex } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { addServices, type GrpcAdapterOptions, type RegisteredService } from "./rpc/grpc-adapter.js";

export interface GrpcEndpointOptions extends GrpcAdapterOptions {
  /** Sees every status grpc-js sends; accounts for the calls it refuses itself. */
  runtimeRefusals: grpc.ServerInterceptor;
  maxConcurrentStreams: number;
  maxMessageBytes: number;
  /** Every HTTP/2 session grpc-js opens for an injected connection, before its first stream. */
  onSession(session: Http2Session): void;
}

export interface GrpcEndpoint {
  /** Hands over a connection that opened with the HTTP/2 preface. */
  inject(connection: Duplex): void;
  /** Stops grpc-js's HTTP/2 server; the sessions themselves are the caller's to end. */
  close(): void;
}

/**
 * gRPC on @grpc/grpc-js, fed connections by the public port's sniffer
 * (`createConnectionInjector`): grpc-js never listens itself.
 */
export function createGrpcEndpoint(services: RegisteredService[], options: GrpcEndpointOptions): GrpcEndpoint {
  const server = new grpc.Server({
    "grpc.max_concurrent_streams": options.maxConcurrentStreams,
    "grpc.max_receive_message_length": options.maxMessageBytes,
    // Channelz keeps per-call counters and traces nobody reads here: CPU on every call.
    "grpc.enable_channelz": 0,
    interceptors: [options.runtimeRefusals],
  });
  addServices(server, services, options);
  const http2Servers = internalHttp2Servers(server);
  const before = new Set(http2Servers.keys());
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const created = [...http2Servers.keys()].filter((s) => !before.has(s));
  if (created.length !== 1) throw new Error("grpc-js (the version pinned in package.json): cannot find the HTTP/2 server of a connection injector");
  // Idle timeout, head deadline and the drain of each session are ours, the same for both stacks.
  created[0].on("session", options.onSession);
  return {
    inject: (connection) => injector.injectConnection(connection),
    close: () => injector.destroy(),
  };
}

/**
 * grpc-js keeps the HTTP/2 server behind a connection injector private; its
 * sessions are what the port's connection hygiene and drain work on (the
 * injector's own drain() closes every session at once, streams and all).
 * The field is read, never written, and its absence fails the start loudly.
 */
function internalHttp2Servers(server: grpc.Server): Map<Http2Server, unknown> {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map))
    throw new Error("grpc-js (the version pinned in package.json): Server.http2Servers is not a Map; the connection hygiene needs it");
  return servers as Map<Http2Server, unknown>;
}
