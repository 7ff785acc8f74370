import { Code, ConnectError } from "@connectrpc/connect";
import { QueueTicketSchema, type QueueTicket } from "./gen/boxoffice/queue/v1/queue_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/boxoffice/error/v1/error_reason_pb.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of every refusal the server sends. */
export const ERROR_DOMAIN = "boxoffice";

/**
 * The ErrorInfo reason strings the server sends: one per value of the
 * proto's boxoffice.error.v1.ErrorReason, its name without the
 * "ERROR_REASON_" prefix (e.g. "QUEUE_TOKEN_MISSING"). protobuf-es names the
 * generated enum's members the same way.
 */
export type Reason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

/** What every value's proto name starts with; never part of the reason string. */
const PREFIX = "ERROR_REASON_";

/**
 * Every reason by its own name (`Reason.QUEUE_TOKEN_WAITING`), built from the
 * generated enum: this package's one place that turns the proto's names into
 * reason strings (see error_reason.proto). Compare `refusal.reason` with these.
 */
export const Reason = Object.freeze(
  Object.fromEntries(
    ErrorReasonSchema.values
      .filter((v) => v.number !== ErrorReason.UNSPECIFIED && v.name.startsWith(PREFIX))
      .map((v) => {
        const reason = v.name.slice(PREFIX.length);
        return [reason, reason];
      }),
  ),
) as { readonly [R in Reason]: R };

/** Every reason the server sends, in the proto enum's order. */
export const ALL_REASONS: readonly Reason[] = Object.freeze(Object.values(Reason));

const R = Reason;

/**
 * The reasons by what the client can do about them. A reason not listed here
 * (from a server newer than this client) is still passed through as a string.
 */
export const REASONS = {
  /** Fix the request. */
  invalid: [R.AMOUNT_NOT_POSITIVE, R.CHARGE_LIMIT_EXCEEDED, R.INVALID_PAGE_TOKEN, R.USER_ID_REQUIRED],
  /** Sign in (again). */
  unauthenticated: [
    R.AUTH_TOKEN_MISSING,
    R.AUTH_TOKEN_MALFORMED,
    R.AUTH_TOKEN_EXPIRED,
    R.AUTH_TOKEN_NOT_YET_VALID,
    R.AUTH_TOKEN_INVALID,
    R.AUTH_SUBJECT_UNSUPPORTED,
  ],
  /** Not this user's to do. */
  denied: [R.USER_MISMATCH, R.SCOPE_REQUIRED, R.QUEUE_TOKEN_NOT_YOURS],
  /** Slow down (metadata retry_after_ms / limit). */
  exhausted: [R.RATE_LIMITED, R.QUEUE_STREAMS_EXCEEDED],
  /** The queue or the booking state says no. */
  precondition: [
    R.QUEUE_TOKEN_MISSING,
    R.QUEUE_TOKEN_INVALID,
    R.QUEUE_TOKEN_EXPIRED,
    R.QUEUE_TOKEN_WAITING,
    R.SEAT_UNAVAILABLE,
    R.HOLD_LIMIT_REACHED,
    R.HOLD_EXPIRED,
    R.RESERVATION_NOT_HELD,
    R.ALREADY_PAID,
    R.INSUFFICIENT_BALANCE,
    R.BALANCE_LIMIT_EXCEEDED,
    R.IDEMPOTENCY_KEY_REUSED,
  ],
  notFound: [R.CONCERT_NOT_FOUND, R.CONCERT_DATE_NOT_FOUND, R.SEAT_NOT_FOUND, R.RESERVATION_NOT_FOUND],
  /** Retry the same call (with the same idempotency key). */
  retry: [
    R.CONCURRENT_UPDATE,
    R.TRANSACTION_CONFLICT,
    R.CONCURRENT_INSERT,
    R.LOCK_TIMEOUT,
    R.LOCK_UNAVAILABLE,
    R.DATABASE_UNAVAILABLE,
    R.DATABASE_TIMEOUT,
    R.QUEUE_UNAVAILABLE,
    R.AUTH_KEYS_UNAVAILABLE,
  ],
} as const;

// Every reason of the enum sits in some group: a reason added to the proto does not compile until it is placed.
type Grouped = (typeof REASONS)[keyof typeof REASONS][number];
const everyReasonGrouped: [Exclude<Reason, Grouped>] extends [never] ? true : Exclude<Reason, Grouped> = true;
void everyReasonGrouped;

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
    waitingTicket: info?.reason === R.QUEUE_TOKEN_WAITING ? ce.findDetails(QueueTicketSchema)[0] : undefined,
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
