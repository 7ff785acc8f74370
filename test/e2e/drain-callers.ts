/**
 * Real clients in a plain Node process, driven over IPC by drain.test.ts:
 * grpc-js, and connect-node's gRPC, gRPC-Web and Connect transports.
 *
 * Not inside Jest: connect-node classifies Node's errors (ECONNREFUSED,
 * ECONNRESET) with `instanceof Error`, which is false across Jest's realms,
 * so in a test worker it reports INTERNAL for what a real client reports as
 * UNAVAILABLE or ABORTED. Started with `node --import tsx`.
 */
import { createServer as createHttp2Server, constants as h2, type Http2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { codeName } from "../../src/rpc/codes";
import { grpc, grpcJsClient, unary } from "./grpc-js";

export interface Outcome {
  caller: string;
  /** "OK", or the status name the client reported. */
  code: string;
  message: string;
}

export type Request =
  /** `n` concurrent ListConcerts from every caller (only those over HTTP/2 unless `http1`). */
  | { cmd: "wave"; n: number; http1: boolean }
  /** One call from grpc-js and one from connect-node to a server that refuses every stream (REFUSED_STREAM). */
  | { cmd: "refused-stream" }
  | { cmd: "exit" };

export type Command = Request & { id: number };

export type Reply = { id: number; outcomes: Outcome[] };

interface Caller {
  name: string;
  http1: boolean;
  listConcerts(): Promise<Outcome>;
  close(): void;
}

function grpcJsCaller(port: number): Caller {
  const client = grpcJsClient(port);
  const name = "grpc-js";
  return {
    name,
    http1: false,
    listConcerts: () =>
      unary(client, ConcertService.method.listConcerts, {}).then(
        (r) => ({ caller: name, code: r.message.concerts.length > 0 ? "OK" : "EMPTY", message: "" }),
        (err: grpc.ServiceError) => ({ caller: name, code: grpc.status[err.code], message: err.details }),
      ),
    close: () => client.close(),
  };
}

function connectCaller(name: string, transport: Transport, http1 = false): Caller {
  const client = createClient(ConcertService, transport);
  return {
    name,
    http1,
    listConcerts: () =>
      client.listConcerts({}).then(
        (r) => ({ caller: name, code: r.concerts.length > 0 ? "OK" : "EMPTY", message: "" }),
        (err: unknown) => {
          const e = ConnectError.from(err);
          return { caller: name, code: codeName(e.code), message: e.rawMessage };
        },
      ),
    close: () => undefined,
  };
}

function createCallers(baseUrl: string, port: number): Caller[] {
  return [
    grpcJsCaller(port),
    connectCaller("connect-node gRPC", createGrpcTransport({ baseUrl })),
    // Plaintext HTTP/2 is gRPC (grpc-js); Connect and gRPC-Web arrive over HTTP/1.1 (or TLS).
    connectCaller("connect-node gRPC-Web HTTP/1.1", createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }), true),
    connectCaller("connect-node Connect HTTP/1.1", createConnectTransport({ baseUrl, httpVersion: "1.1" }), true),
  ];
}

/** A server that answers every stream with RST_STREAM(REFUSED_STREAM), called once by grpc-js and once by connect-node. */
async function refusedStream(): Promise<Outcome[]> {
  const server = createHttp2Server();
  const sessions = new Set<Http2Session>();
  server.on("session", (session) => sessions.add(session));
  server.on("stream", (stream) => {
    stream.on("error", () => undefined); // node reports the reset it sent as an error on its own side too
    stream.close(h2.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const callers = [grpcJsCaller(port), connectCaller("connect-node gRPC", createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }))];
  try {
    return await Promise.all(callers.map((c) => c.listConcerts()));
  } finally {
    for (const c of callers) c.close();
    for (const s of sessions) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

const [baseUrl, port] = [process.argv[2], Number(process.argv[3])];
const callers = createCallers(baseUrl, port);

process.on("message", (command: Command) => {
  const reply = (outcomes: Outcome[]) => {
    if (process.connected) process.send!({ id: command.id, outcomes } satisfies Reply);
  };
  switch (command.cmd) {
    case "wave": {
      const which = callers.filter((c) => command.http1 || !c.http1);
      void Promise.all(which.flatMap((c) => Array.from({ length: command.n }, () => c.listConcerts()))).then(reply);
      return;
    }
    case "refused-stream":
      void refusedStream().then(reply);
      return;
    case "exit":
      for (const c of callers) c.close();
      process.disconnect();
      return;
  }
});
