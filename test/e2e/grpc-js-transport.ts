/**
 * A grpc-js channel behind connect's Transport interface, so one scenario
 * written with connect's typed clients runs over a classic gRPC client too.
 */
import { create, fromBinary, toBinary, type DescMessage, type DescMethodStreaming, type DescMethodUnary } from "@bufbuild/protobuf";
import type { StreamResponse, Transport, UnaryResponse } from "@connectrpc/connect";
import { asConnectError, grpc, pathOf } from "./grpc-js";

function metadataOf(header: ConstructorParameters<typeof Headers>[0]): grpc.Metadata {
  const metadata = new grpc.Metadata();
  new Headers(header).forEach((value, key) => {
    metadata.add(key, value);
  });
  return metadata;
}

function headersOf(metadata: grpc.Metadata): Headers {
  const header = new Headers();
  for (const [k, v] of Object.entries(metadata.getMap())) header.set(k, Buffer.isBuffer(v) ? v.toString("base64") : String(v));
  return header;
}

const codec = <T extends DescMessage>(schema: T) => ({
  encode: (v: unknown) => Buffer.from(toBinary(schema, create(schema, v as never))),
  decode: (b: Buffer) => fromBinary(schema, b),
});

export function grpcJsTransport(client: grpc.Client): Transport {
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: unknown,
    ): Promise<UnaryResponse<I, O>> {
      const options: grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
      return new Promise((resolve, reject) => {
        let responseHeader = new Headers();
        const call = client.makeUnaryRequest(
          pathOf(method),
          codec(method.input).encode,
          codec(method.output).decode,
          input,
          metadataOf(header),
          options,
          (err, message) => {
            if (err) return reject(asConnectError(err));
            resolve({ stream: false, service: method.parent, method, header: responseHeader, message: message as never, trailer: new Headers() });
          },
        );
        call.on("metadata", (m: grpc.Metadata) => (responseHeader = headersOf(m)));
        signal?.addEventListener("abort", () => call.cancel(), { once: true });
      });
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: AsyncIterable<unknown>,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") throw new Error("only server streams are needed here");
      let first: unknown;
      for await (const m of input) first = m;
      const options: grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
      const call = client.makeServerStreamRequest(pathOf(method), codec(method.input).encode, codec(method.output).decode, first, metadataOf(header), options);
      signal?.addEventListener("abort", () => call.cancel(), { once: true });
      const responseHeader = await new Promise<Headers>((resolve) => {
        call.once("metadata", (m: grpc.Metadata) => resolve(headersOf(m)));
        call.once("status", () => resolve(new Headers()));
      });
      async function* messages() {
        try {
          for await (const m of call) yield m as never;
        } catch (err) {
          throw asConnectError(err);
        }
      }
      return { stream: true, service: method.parent, method, header: responseHeader, message: messages(), trailer: new Headers() };
    },
  };
}
