import { Code, ConnectError } from "@connectrpc/connect";
import { QueueTicketSchema, type QueueTicket } from "./gen/boxoffice/queue/v1/queue_pb.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of every refusal the server sends. */
export const ERROR_DOMAIN = "boxoffice";

/**
 * Every ErrorInfo reason the server documents (README, "Errors"), by what the
 * client can do about it. A reason not listed here is still passed through as
 * a string: new reasons may appear before a client is updated.
 */
export const REASONS = {
  /** Fix the request. */
  invalid: ["AMOUNT_NOT_POSITIVE", "CHARGE_LIMIT_EXCEEDED", "INVALID_PAGE_TOKEN", "USER_ID_REQUIRED"],
  /** Sign in (again). */
  unauthenticated: [
    "AUTH_TOKEN_MISSING",
    "AUTH_TOKEN_MALFORMED",
    "AUTH_TOKEN_EXPIRED",
    "AUTH_TOKEN_NOT_YET_VALID",
    "AUTH_TOKEN_INVALID",
    "AUTH_SUBJECT_UNSUPPORTED",
  ],
  /** Not this user's to do. */
  denied: ["USER_MISMATCH", "SCOPE_REQUIRED", "QUEUE_TOKEN_NOT_YOURS"],
  /** Slow down (metadata retry_after_ms / limit). */
  exhausted: ["RATE_LIMITED", "QUEUE_STREAMS_EXCEEDED"],
  /** The queue or the booking state says no. */
  precondition: [
    "QUEUE_TOKEN_MISSING",
    "QUEUE_TOKEN_INVALID",
    "QUEUE_TOKEN_EXPIRED",
    "QUEUE_TOKEN_WAITING",
    "SEAT_UNAVAILABLE",
    "HOLD_LIMIT_REACHED",
    "HOLD_EXPIRED",
    "RESERVATION_NOT_HELD",
    "ALREADY_PAID",
    "INSUFFICIENT_BALANCE",
    "BALANCE_LIMIT_EXCEEDED",
    "IDEMPOTENCY_KEY_REUSED",
  ],
  notFound: ["CONCERT_NOT_FOUND", "CONCERT_DATE_NOT_FOUND", "SEAT_NOT_FOUND", "RESERVATION_NOT_FOUND"],
  /** Retry the same call (with the same idempotency key). */
  retry: [
    "CONCURRENT_UPDATE",
    "TRANSACTION_CONFLICT",
    "CONCURRENT_INSERT",
    "LOCK_TIMEOUT",
    "LOCK_UNAVAILABLE",
    "DATABASE_UNAVAILABLE",
    "DATABASE_TIMEOUT",
    "QUEUE_UNAVAILABLE",
    "AUTH_KEYS_UNAVAILABLE",
  ],
} as const;

export type Reason = (typeof REASONS)[keyof typeof REASONS][number];

export const ALL_REASONS: readonly Reason[] = Object.values(REASONS).flat();

/** What a failed call says, read once from the ConnectError and its details. */
export interface Refusal {
  code: Code;
  /** The ErrorInfo reason, when the server sent one (an expected failure). */
  reason: Reason | (string & {}) | undefined;
  /** ErrorInfo metadata: e.g. `position`, `seat_number` and `state`, `balance` and `required`, `retry_after_ms`. */
  metadata: Record<string, string>;
  /** The server's message (English, for logs and developers; show `reason` to users). */
  message: string;
  /** QUEUE_TOKEN_WAITING: the ticket as it stands, sent as a second detail. */
  waitingTicket: QueueTicket | undefined;
  /** RATE_LIMITED: how long to wait before trying again. */
  retryAfterMs: number | undefined;
  /** Whether the same call may simply be sent again (ABORTED, UNAVAILABLE). */
  retryable: boolean;
  /** The server's x-request-id for this call, when the response carried one (quote it to support). */
  requestId: string | undefined;
  /** No answer at all: network down, server unreachable, or the browser blocked the call (CORS). */
  unreachable: boolean;
}

/** Reads a failed call; anything that is not a ConnectError counts as Code.Unknown. */
export function refusalOf(err: unknown): Refusal {
  const ce = ConnectError.from(err);
  const info = ce.findDetails(ErrorInfoSchema).find((i) => i.domain === ERROR_DOMAIN);
  const metadata = { ...(info?.metadata ?? {}) };
  const retryAfter = Number(metadata.retry_after_ms);
  return {
    code: ce.code,
    reason: info?.reason || undefined,
    metadata,
    message: ce.rawMessage,
    waitingTicket: info?.reason === "QUEUE_TOKEN_WAITING" ? ce.findDetails(QueueTicketSchema)[0] : undefined,
    retryAfterMs: Number.isFinite(retryAfter) && metadata.retry_after_ms !== undefined ? retryAfter : undefined,
    retryable: ce.code === Code.Aborted || ce.code === Code.Unavailable,
    requestId: ce.metadata.get("x-request-id") ?? undefined,
    unreachable: isUnreachable(ce),
  };
}

/** The ErrorInfo reason of a failed call, if the server sent one. */
export function errorReason(err: unknown): string | undefined {
  return refusalOf(err).reason;
}

/** The ticket a QUEUE_TOKEN_WAITING refusal carries: position and wait estimate, without another call. */
export function waitingTicket(err: unknown): QueueTicket | undefined {
  return refusalOf(err).waitingTicket;
}

/**
 * fetch() rejects with a TypeError when no HTTP answer arrived (offline, DNS,
 * connection refused, or a response the browser withheld for want of CORS
 * headers); Connect-Web wraps it as Code.Unknown without any metadata.
 */
function isUnreachable(ce: ConnectError): boolean {
  // By name, not instanceof: the TypeError may come from another realm (a test runner's VM, an iframe's fetch).
  const cause = ce.cause as { name?: unknown } | undefined;
  return ce.code === Code.Unknown && cause?.name === "TypeError" && [...ce.metadata.keys()].length === 0;
}
