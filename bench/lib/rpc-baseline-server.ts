/**
 * A baseline server for bench/rpc.ts, run as its own process (forked with an
 * IPC channel) so its CPU is measured apart from the load generator and from
 * every other server. It answers only grpc.health.v1.Health/Check, and imports
 * nothing of boxoffice's server: these are the floors the real stack is
 * compared against.
 *
 *   raw-h2       node:http2 stream API, a hand-written gRPC frame (no protobuf at all)
 *   grpc-js      bare @grpc/grpc-js Server, protobuf-es (de)serialization
 *   connect-h2c  bare connectNodeAdapter on node:http2 (h2c), generated health_pb
 *   connect-h1   bare connectNodeAdapter on node:http (HTTP/1.1), generated health_pb
 *
 * Sends { port } to its parent once listening on 127.0.0.1.
 */
import { createServer as createHttp1Server } from "node:http";
import { createServer as createHttp2Server, constants as h2 } from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb";

export const BASELINE_KINDS = ["raw-h2", "grpc-js", "connect-h2c", "connect-h1"] as const;
export type BaselineKind = (typeof BASELINE_KINDS)[number];

const CHECK_PATH = `/${Health.typeName}/${Health.method.check.name}`;

/** HealthCheckResponse{status: SERVING} (field 1, varint 1) in one gRPC length-prefixed frame. */
const SERVING_FRAME = Buffer.from([0, 0, 0, 0, 2, 0x08, Status.SERVING]);

function rawH2(): Promise<number> {
  const server = createHttp2Server();
  server.on("stream", (stream, headers) => {
    // The body must be read to its end before the stream can close cleanly.
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    if (headers[h2.HTTP2_HEADER_PATH] !== CHECK_PATH) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
      return;
    }
    stream.on("end", () => {
      if (stream.destroyed) return;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(SERVING_FRAME);
    });
  });
  return listen(server);
}

function grpcJs(): Promise<number> {
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    Check: {
      path: CHECK_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(HealthCheckRequestSchema, b),
      responseSerialize: (m: HealthCheckResponse) => Buffer.from(toBinary(HealthCheckResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
    },
  };
  server.addService(definition, {
    Check: (_call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) =>
      callback(null, create(HealthCheckResponseSchema, { status: Status.SERVING })),
  });
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

function connectAdapter() {
  return connectNodeAdapter({
    routes: (router) => router.service(Health, { check: () => ({ status: Status.SERVING }) }),
  });
}

function listen(server: { listen(port: number, host: string, cb: () => void): unknown; address(): AddressInfo | string | null }): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

async function main(kind: string): Promise<void> {
  let port: number;
  if (kind === "raw-h2") port = await rawH2();
  else if (kind === "grpc-js") port = await grpcJs();
  else if (kind === "connect-h2c") port = await listen(createHttp2Server(connectAdapter()));
  else if (kind === "connect-h1") port = await listen(createHttp1Server(connectAdapter()));
  else throw new Error(`unknown baseline "${kind}" (one of ${BASELINE_KINDS.join(", ")})`);
  process.send!({ port });
  // The parent going away (even killed) must not leave this server behind.
  process.on("disconnect", () => process.exit(0));
}

if (require.main === module) {
  main(process.argv[2]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
