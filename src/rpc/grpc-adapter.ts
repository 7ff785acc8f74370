import { once } from "node:events";
import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createServiceImplSpec,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";

/**
 * Serves the same service implementations and the same interceptors that
 * connect-node runs for Connect and gRPC-Web, on a @grpc/grpc-js Server for
 * gRPC clients. grpc-js does the HTTP/2 and gRPC framing (a fraction of the
 * CPU connect-node spends per call); everything a call means to this service
 * (authentication, the queue gate, validation, error mapping, logging,
 * metrics, request ids, the drain) is the one pipeline both stacks run,
 * through connect's own invoke functions, so a handler cannot tell which
 * stack carried its call.
 */

/** One `router.service(...)` registration, kept so both stacks can be given it. */
export interface RegisteredService {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** What the pipeline needs from the transport for each call (request id, client address). */
export type GrpcCallValues = (metadata: grpc.Metadata, peer: string) => ContextValues;

export interface GrpcAdapterOptions {
  interceptors: Interceptor[];
  callValues: GrpcCallValues;
  /** The logging stage alone: what a call refused before the pipeline (undecodable) still goes through. */
  logged: Interceptor;
}

/** A request whose bytes are not the request message: answered INVALID_ARGUMENT by the handler, not INTERNAL by grpc-js. */
class Undecodable {
  constructor(readonly error: ConnectError) {}
}

/** Adds every registered service to `server`, each method calling the pipeline and then its implementation. */
export function addServices(server: grpc.Server, services: RegisteredService[], options: GrpcAdapterOptions): void {
  for (const { service, impl } of services) {
    const spec = createServiceImplSpec(service, impl);
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const m = spec.methods[method.localName] as MethodImplSpec;
      definition[method.localName] = methodDefinition(method);
      handlers[method.localName] = methodHandler(m, options);
    }
    server.addService(definition, handlers);
  }
}

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  const kind = method.methodKind;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: kind === "client_streaming" || kind === "bidi_streaming",
    responseStream: kind === "server_streaming" || kind === "bidi_streaming",
    requestDeserialize: (bytes: Buffer) => decode(method.input, bytes),
    requestSerialize: (message: unknown) => encode(method.input, message),
    responseSerialize: (message: unknown) => encode(method.output, message),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

function decode(schema: DescMessage, bytes: Buffer): unknown {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    return new Undecodable(new ConnectError(`cannot decode ${schema.typeName}: ${(err as Error).message}`, Code.InvalidArgument));
  }
}

function encode(schema: DescMessage, message: unknown): Buffer {
  const bytes = toBinary(schema, message as never);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Set once the call's status is on its way: a "cancelled" after that is grpc-js's end-of-call notice. */
interface Answered {
  done: boolean;
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

function methodHandler(spec: MethodImplSpec, options: GrpcAdapterOptions): grpc.UntypedHandleCall {
  const { method } = spec;
  const url = `/${method.parent.typeName}/${method.name}`;
  const contextOf = (call: AnyCall, answered: Answered): HandlerContext => {
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined;
    // Not connect's createHandlerContext: its deadline timer and linked
    // signals cost an abort (and a DOMException) per call to clean up. grpc-js
    // times the deadline itself and reports it, like a cancel, as "cancelled".
    const aborted = new AbortController();
    (call as grpc.ServerUnaryCall<unknown, unknown>).once("cancelled", () => {
      // grpc-js reports every call as cancelled once its status is out: only one not answered yet was.
      if (answered.done) return;
      const late = deadlineMs !== undefined && Date.now() >= deadlineMs;
      aborted.abort(late ? new ConnectError("the deadline passed", Code.DeadlineExceeded) : new ConnectError("the client cancelled the call", Code.Canceled));
    });
    const requestHeader = metadataToHeaders(call.metadata);
    // grpc-js consumed grpc-timeout; the deadline interceptor finds it where connect-node leaves it.
    if (deadlineMs !== undefined) requestHeader.set("grpc-timeout", `${Math.max(0, Math.ceil(deadlineMs - Date.now()))}m`);
    return {
      service: method.parent,
      method,
      protocolName: "grpc",
      requestMethod: "POST",
      url,
      signal: aborted.signal,
      timeoutMs: () => (deadlineMs === undefined ? undefined : deadlineMs - Date.now()),
      requestHeader,
      responseHeader: new Headers(),
      responseTrailer: new Headers(),
      values: options.callValues(call.metadata, call.getPeer()),
    };
  };

  // A request that does not decode gets its log line and metric sample, then INVALID_ARGUMENT.
  const refusing = (bad: Undecodable): Interceptor[] => [options.logged, () => () => Promise.reject(bad.error)];

  if (spec.kind === "unary") {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const answered = { done: false };
      const ctx = contextOf(call, answered);
      const request = call.request;
      const interceptors = request instanceof Undecodable ? refusing(request) : options.interceptors;
      invokeUnaryImplementation(spec, ctx, request as never, interceptors).then(
        (output) => {
          if (call.cancelled) return;
          answered.done = true;
          sendHeader(call, ctx.responseHeader);
          callback(null, output, headersToMetadata(ctx.responseTrailer));
        },
        (err: unknown) => {
          if (call.cancelled) return;
          answered.done = true;
          callback(statusOf(err));
        },
      );
    };
  }
  return (call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
    const answered = { done: false };
    const ctx = contextOf(call, answered);
    let interceptors = options.interceptors;
    let inputs: AsyncIterable<unknown>;
    if (spec.kind === "server_streaming") {
      const request = (call as grpc.ServerWritableStream<unknown, unknown>).request;
      if (request instanceof Undecodable) interceptors = refusing(request);
      inputs = createAsyncIterable([request]);
    } else {
      inputs = readMessages(call as grpc.ServerDuplexStream<unknown, unknown>);
    }
    void pump(call, ctx, answered, transformInvokeImplementation(spec, ctx, interceptors)(inputs as AsyncIterable<never>));
  };
}

/** The client's messages of a client-streaming or bidi call, refusing one that does not decode. */
async function* readMessages(call: grpc.ServerDuplexStream<unknown, unknown>): AsyncGenerator<unknown> {
  // Not `for await (… of call)`: when the client half-closes, that destroys
  // the whole duplex, and the status could no longer be written.
  for await (const message of call.iterator({ destroyOnReturn: false })) {
    if (message instanceof Undecodable) throw message.error;
    yield message;
  }
}

/** Writes a stream's messages as they come, with backpressure; ends it with the trailers or the error's status. */
async function pump(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  ctx: HandlerContext,
  answered: Answered,
  outputs: AsyncIterable<unknown>,
): Promise<void> {
  const it = outputs[Symbol.asyncIterator]();
  // A client that goes away ends the iteration: the pipeline's finally blocks
  // see the stream closed early (logged CANCELED) and the handler stops.
  const stop = () => void it.return?.(undefined)?.catch(() => undefined);
  call.once("cancelled", stop);
  let headerSent = false;
  try {
    for (;;) {
      const r = await it.next();
      if (call.cancelled) return;
      if (!headerSent) {
        sendHeader(call, ctx.responseHeader);
        headerSent = true;
      }
      if (r.done) break;
      if (!call.write(r.value)) await once(call, "drain", { signal: ctx.signal }).catch(() => undefined);
    }
    answered.done = true;
    call.end(headersToMetadata(ctx.responseTrailer));
  } catch (err) {
    if (!call.cancelled) {
      answered.done = true;
      call.emit("error", statusOf(err));
    }
  } finally {
    call.off("cancelled", stop);
  }
}

function sendHeader(call: AnyCall, header: Headers): void {
  let any = false;
  header.forEach(() => {
    any = true;
  });
  if (any) call.sendMetadata(headersToMetadata(header));
}

/**
 * A failure as grpc-js sends it: code, message, and the error's metadata with
 * the details (grpc-status-details-bin). A plain status, not an Error: a
 * refusal is an answer, and capturing a stack for each one is work for nothing.
 */
function statusOf(err: unknown): Partial<grpc.StatusObject> {
  const error = ConnectError.from(err);
  const trailer = setTrailerStatus(new Headers(), error); // with the error's metadata
  // grpc-js writes grpc-status and grpc-message itself, from code and details.
  trailer.delete("grpc-status");
  trailer.delete("grpc-message");
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata: headersToMetadata(trailer) };
}

function metadataToHeaders(metadata: grpc.Metadata): Headers {
  const header = new Headers();
  for (const [key, values] of Object.entries(metadata.toHttp2Headers())) {
    if (values === undefined) continue;
    for (const v of Array.isArray(values) ? values : [values]) header.append(key, String(v));
  }
  return header;
}

function headersToMetadata(header: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  header.forEach((value, key) => {
    if (key.endsWith("-bin")) metadata.add(key, Buffer.from(value, "base64"));
    else metadata.add(key, value);
  });
  return metadata;
}
