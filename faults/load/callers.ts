/**
 * One way to call a unary RPC on instance i, over classic gRPC (@grpc/grpc-js,
 * HTTP/2) or Connect JSON over HTTP/1.1 (connect-node, as a browser's
 * connect-web does), with a deadline and an optional queue token. Both
 * normalise failures to a gRPC code name and ErrorInfo reason.
 */
import { Agent } from "node:http";
import { create, toBinary, fromBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { asConnectError, grpc } from "../../test/e2e/grpc-js";
import { CODE_NAMES, type Protocol } from "../lib/attempts";

export const QUEUE_TOKEN_HEADER = "x-queue-token";

export interface CallOptions {
  token?: string;
  timeoutMs: number;
}

export interface Caller {
  readonly protocol: Protocol;
  call<I extends DescMessage, O extends DescMessage>(
    instance: number,
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    o: CallOptions,
  ): Promise<MessageShape<O>>;
  close(): void;
}

export interface Failure {
  code: string;
  reason?: string;
  message: string;
  /** The ErrorInfo metadata, e.g. {"state":"locked"} for a SEAT_UNAVAILABLE. */
  detail?: string;
}

const pathOf = (m: DescMethodUnary) => `/${m.parent.typeName}/${m.name}`;

/**
 * Clients reconnect quickly to an instance that comes back: grpc-js's default
 * backoff (1 s growing to 120 s) would keep failing calls to a restarted
 * server long after it serves, which measures the client, not the server.
 */
const GRPC_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.use_local_subchannel_pool": 1,
};

export function createGrpcCaller(ports: number[]): Caller {
  const clients = ports.map((port) => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS));
  return {
    protocol: "grpc",
    call(instance, method, input, o) {
      const md = new grpc.Metadata();
      if (o.token) md.set(QUEUE_TOKEN_HEADER, o.token);
      return new Promise((resolve, reject) => {
        clients[instance].makeUnaryRequest(
          pathOf(method),
          (v: MessageInitShape<typeof method.input>) => Buffer.from(toBinary(method.input, create(method.input, v))),
          (b: Buffer) => fromBinary(method.output, b),
          input,
          md,
          { deadline: Date.now() + o.timeoutMs },
          (err, message) => (err ? reject(err) : resolve(message!)),
        );
      });
    },
    close() {
      for (const c of clients) c.close();
    },
  };
}

/**
 * Idle keep-alive sockets are dropped after 4 s, before the server's
 * KEEPALIVE_TIMEOUT (5 s) closes them: reusing a socket the server is closing
 * fails with ECONNRESET, a race of HTTP/1.1 itself (browsers retry it on their
 * own) that would read as a fault long after the real one.
 */
const IDLE_SOCKET_MS = 4000;

export function createConnectCaller(ports: number[]): Caller {
  const agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: IDLE_SOCKET_MS });
  const transports: Transport[] = ports.map((port) =>
    createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent } }),
  );
  return {
    protocol: "connect",
    async call(instance, method, input, o) {
      const headers: Record<string, string> = {};
      if (o.token) headers[QUEUE_TOKEN_HEADER] = o.token;
      const res = await transports[instance].unary(method, undefined, o.timeoutMs, headers, input);
      return res.message;
    },
    close() {
      agent.destroy();
    },
  };
}

/** The server's own INTERNAL says "internal error (request id ...)"; anything else came from the connection. */
const SERVER_INTERNAL = /^internal error \(request id/;

/** A failed call as a code name and reason, whichever client made it. */
export function describeFailure(err: unknown): Failure {
  let ce: ConnectError | undefined;
  const grpcErr = err as grpc.ServiceError;
  if (typeof grpcErr?.code === "number" && grpcErr.metadata instanceof grpc.Metadata) {
    try {
      ce = asConnectError(err);
    } catch {
      return { code: CODE_NAMES[grpcErr.code] ?? "UNKNOWN", message: String(grpcErr.details ?? grpcErr.message) };
    }
  } else if (err instanceof ConnectError) {
    ce = err;
  }
  if (!ce) return { code: "TRANSPORT", message: String((err as Error)?.message ?? err).slice(0, 200) };
  const code = CODE_NAMES[ce.code] ?? "UNKNOWN";
  const info = ce.findDetails(ErrorInfoSchema)[0];
  let reason = info?.reason;
  if (!reason && code === "INTERNAL") reason = SERVER_INTERNAL.test(ce.rawMessage) ? "server" : "transport";
  const metadata = info && Object.keys(info.metadata).length ? JSON.stringify(info.metadata).slice(0, 200) : undefined;
  return { code, reason, message: ce.rawMessage.slice(0, 200), detail: metadata };
}
