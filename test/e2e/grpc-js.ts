/**
 * A classic gRPC client (@grpc/grpc-js) for the generated schemas: messages are
 * encoded with protobuf-es, so no .proto files are loaded at run time.
 */
import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";

export { grpc };

type Method<I extends DescMessage, O extends DescMessage> = DescMethod & { input: I; output: O };

export function grpcJsClient(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

export const pathOf = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

const encoder =
  <I extends DescMessage>(schema: I) =>
  (v: MessageInitShape<I>) =>
    Buffer.from(toBinary(schema, create(schema, v)));
const decoder =
  <O extends DescMessage>(schema: O) =>
  (b: Buffer) =>
    fromBinary(schema, b);

export interface UnaryResult<O extends DescMessage> {
  message: MessageShape<O>;
  headers: grpc.Metadata;
}

/** A unary call; rejects with the grpc-js ServiceError on a non-OK status. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: Method<I, O>,
  input: MessageInitShape<I>,
  metadata = new grpc.Metadata(),
): Promise<UnaryResult<O>> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = client.makeUnaryRequest(pathOf(method), encoder(method.input), decoder(method.output), input, metadata, (err, message) =>
      err ? reject(err) : resolve({ message: message!, headers }),
    );
    call.on("metadata", (h) => (headers = h));
  });
}

/** Sends bytes the client did not encode, framed as one gRPC message, to any path. */
export function unaryRaw(client: grpc.Client, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new grpc.Metadata(),
      (err, message) => (err ? reject(err) : resolve(message!)),
    );
  });
}

export function serverStream<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: Method<I, O>,
  input: MessageInitShape<I>,
): grpc.ClientReadableStream<MessageShape<O>> {
  return client.makeServerStreamRequest(pathOf(method), encoder(method.input), decoder(method.output), input, new grpc.Metadata());
}

export function bidiStream<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: Method<I, O>,
): grpc.ClientDuplexStream<MessageInitShape<I>, MessageShape<O>> {
  return client.makeBidiStreamRequest(pathOf(method), encoder(method.input), decoder(method.output), new grpc.Metadata());
}

/** What a grpc-js call failed with, details (grpc-status-details-bin) decoded the Connect way. */
export function asConnectError(err: unknown): ConnectError {
  const e = err as grpc.ServiceError;
  if (typeof e?.code !== "number" || !(e.metadata instanceof grpc.Metadata)) throw err;
  const trailers = new Headers({ "grpc-status": String(e.code), "grpc-message": encodeURIComponent(e.details) });
  for (const [k, v] of Object.entries(e.metadata.getMap())) {
    trailers.set(k, Buffer.isBuffer(v) ? v.toString("base64").replace(/=+$/, "") : v);
  }
  // findTrailerError is Connect's own parser for these trailers (pinned version).
  const found = findTrailerError(trailers);
  if (!found) throw new Error(`not an error status: ${e.code}`);
  return found;
}

/** Resolves when a stream ends: with its status, and every message it delivered. */
export function collect<T>(stream: grpc.ClientReadableStream<T>, onMessage?: (m: T) => void): Promise<{ messages: T[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    stream.on("data", (m: T) => {
      messages.push(m);
      onMessage?.(m);
    });
    stream.on("error", () => undefined); // the status below carries the same information
    stream.on("status", (status: grpc.StatusObject) => resolve({ messages, status }));
  });
}
