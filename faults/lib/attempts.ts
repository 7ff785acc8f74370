/**
 * What a simulated client records about every call it makes, and how the
 * runner classifies the outcome. Shared by the load processes and the runner.
 */
import { ERROR_CODE_NAMES } from "../../src/rpc/codes";

export type Protocol = "grpc" | "connect";

export type RpcName = "IssueToken" | "GetQueueStatus" | "HoldSeat" | "ChargeBalance" | "PayReservation" | "ListReservations";

/** What an OK answer said, as far as the checks need it. */
export interface OkResult {
  token?: string;
  queueStatus?: "WAITING" | "ACTIVE" | "EXPIRED" | "UNSPECIFIED";
  position?: number;
  reservationId?: string;
  reservationStatus?: string;
  date?: string;
  seatNumber?: number;
  amount?: number;
  paymentId?: string;
  entryId?: string;
  balance?: number;
}

/** One attempt of one call on one instance. Times are epoch ms on this machine's clock. */
export interface Attempt {
  buyer: string;
  protocol: Protocol;
  rpc: RpcName;
  /** Index of the server instance called (0 = A, 1 = B). */
  instance: number;
  /** The buyer's purchase round (a new seat each round). */
  round: number;
  /** 0 for the first attempt of a logical call, 1.. for retries. */
  retry: number;
  /** The idempotency key sent, if any. */
  key?: string;
  /** The queue token sent (gated calls) or asked about (GetQueueStatus). */
  token?: string;
  start: number;
  end: number;
  /** "OK", a gRPC code name ("UNAVAILABLE", ...) or "TRANSPORT" (no status at all). */
  code: string;
  /** The ErrorInfo reason, or for INTERNAL whether the server ("server") or the connection ("transport") produced it. */
  reason?: string;
  message?: string;
  /** The ErrorInfo metadata as JSON (e.g. a SEAT_UNAVAILABLE's state: held, sold or locked). */
  detail?: string;
  ok?: OkResult;
}

/** gRPC code names by number, as the wire spells them (0 is OK). */
export const CODE_NAMES: readonly string[] = ["OK", ...ERROR_CODE_NAMES];

/**
 * Codes a client retries on the other instance with the same idempotency key:
 * infrastructure trouble, a deadline, or a connection cut mid-call. INTERNAL
 * only when the connection produced it: the server's own INTERNAL is a bug,
 * and retrying a bug hides it.
 */
export function isRetryable(code: string, reason?: string): boolean {
  if (code === "INTERNAL") return reason === "transport";
  return ["UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "TRANSPORT"].includes(code);
}

/**
 * Outcomes after which the call may or may not have been applied. Every
 * retryable failure counts: even a reasoned DATABASE_UNAVAILABLE can come from
 * a connection lost at COMMIT.
 */
export const isAmbiguous = isRetryable;

/** A failed call that is the infrastructure's doing, not a business answer. */
export function isInfraFailure(a: Pick<Attempt, "code" | "reason">): boolean {
  return a.code !== "OK" && (isRetryable(a.code, a.reason) || a.code === "INTERNAL" || a.code === "RESOURCE_EXHAUSTED");
}

/** Gate refusals that mean the server no longer knows the buyer's queue token. */
export const TOKEN_LOST_REASONS: ReadonlySet<string> = new Set(["QUEUE_TOKEN_EXPIRED", "QUEUE_TOKEN_INVALID"]);
