import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ConcertService } from "./gen/boxoffice/concert/v1/concert_service_pb.js";
import { QueueService } from "./gen/boxoffice/queue/v1/queue_service_pb.js";
import { ReservationService } from "./gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { WalletService } from "./gen/boxoffice/wallet/v1/wallet_service_pb.js";

/** The request header a gated call carries its queue token in. */
export const QUEUE_TOKEN_HEADER = "x-queue-token";

/** How the browser talks to the server: both are served on the same port. */
export type Protocol = "connect" | "grpc-web";

export interface BoxofficeClientOptions {
  /** Where the API answers, e.g. `https://api.tickets.example.com` (the page's origin needs to be in the server's CORS_ORIGINS if it differs). */
  baseUrl: string;
  /**
   * The user's access token from your identity provider (AUTH_MODE=jwt), sent
   * as `authorization: Bearer …`. A function is asked before every call, so a
   * refreshed token is picked up. Leave it out in AUTH_MODE=none.
   */
  token?: string | (() => string | undefined);
  /** "connect" (default: JSON, readable in devtools) or "grpc-web" (binary). */
  protocol?: Protocol;
  /** Send protobuf binary over Connect instead of JSON (gRPC-Web is always binary here). */
  useBinaryFormat?: boolean;
  /** Runs inside the helper's own interceptor (which adds the two headers). */
  interceptors?: Interceptor[];
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

export interface BoxofficeClient {
  queue: Client<typeof QueueService>;
  concerts: Client<typeof ConcertService>;
  reservations: Client<typeof ReservationService>;
  wallet: Client<typeof WalletService>;
  /**
   * The queue token sent as `x-queue-token` on every call while set (the
   * booking RPCs need it ACTIVE; the others ignore it). Set it from
   * IssueToken's ticket; clear it when the ticket is EXPIRED.
   */
  queueToken: string | undefined;
  /** The transport underneath, for createClient() with other services. */
  readonly transport: Transport;
}

/**
 * A typed client of every boxoffice service over Connect-Web (or gRPC-Web),
 * with the bearer token and the queue token added to each call.
 *
 *   const bo = createBoxofficeClient({ baseUrl: "https://api.example.com", token: () => auth.accessToken });
 *   const { ticket } = await bo.queue.issueToken({});
 *   bo.queueToken = ticket!.token;
 */
export function createBoxofficeClient(options: BoxofficeClientOptions): BoxofficeClient {
  let queueToken: string | undefined;
  const headers: Interceptor = (next) => (req) => {
    const token = typeof options.token === "function" ? options.token() : options.token;
    if (token) req.header.set("authorization", `Bearer ${token}`);
    if (queueToken && !req.header.has(QUEUE_TOKEN_HEADER)) req.header.set(QUEUE_TOKEN_HEADER, queueToken);
    return next(req);
  };
  const common = {
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    interceptors: [headers, ...(options.interceptors ?? [])],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  const transport =
    options.protocol === "grpc-web" ? createGrpcWebTransport(common) : createConnectTransport({ ...common, useBinaryFormat: options.useBinaryFormat ?? false });
  return {
    queue: createClient(QueueService, transport),
    concerts: createClient(ConcertService, transport),
    reservations: createClient(ReservationService, transport),
    wallet: createClient(WalletService, transport),
    get queueToken() {
      return queueToken;
    },
    set queueToken(value) {
      queueToken = value || undefined;
    },
    transport,
  };
}
