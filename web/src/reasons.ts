import { ALL_REASONS, Code, type Reason, type Refusal } from "@boxoffice/client";
import { won } from "./format.js";

/** What the page can offer next to a refusal. */
export type NextStep = "rejoin" | "signin" | "retry" | "pick-seat" | "top-up" | "waiting-room";

export interface Explanation {
  /** The server's reason, or UNREACHABLE / a code name when it sent none: kept on the element for support and tests. */
  reason: string;
  title: string;
  detail?: string;
  tone: "error" | "warn" | "info";
  next?: NextStep;
}

type Words = (r: Refusal) => Omit<Explanation, "reason">;

const seat = (r: Refusal) => (r.metadata.seat_number ? `Seat ${r.metadata.seat_number}` : "That seat");
const busy: Words = () => ({
  title: "The box office is very busy right now.",
  detail: "Nothing was changed. Please try again in a moment.",
  tone: "warn",
  next: "retry",
});
const conflict: Words = () => ({
  title: "Lots of people are booking at this very moment.",
  detail: "Your request collided with another one and nothing was changed. Please try again.",
  tone: "warn",
  next: "retry",
});
const signInAgain =
  (title: string, detail = "Sign in again to continue."): Words =>
  () => ({ title, detail, tone: "error", next: "signin" });

/** Plain words for every reason the server documents (the client package lists them; a test checks none is missing here). */
export const WORDS: Record<Reason, Words> = {
  // The request itself.
  AMOUNT_NOT_POSITIVE: () => ({ title: "Enter an amount above zero.", tone: "error" }),
  CHARGE_LIMIT_EXCEEDED: () => ({ title: "That is more than a single top-up may add.", detail: "Try a smaller amount.", tone: "error" }),
  INVALID_PAGE_TOKEN: () => ({ title: "That list changed while you were reading it.", detail: "Reload to see it from the start.", tone: "warn" }),
  USER_ID_REQUIRED: () => ({ title: "Enter your user name to continue.", tone: "error", next: "signin" }),
  // Signing in.
  AUTH_TOKEN_MISSING: signInAgain("Please sign in.", "This needs your access token."),
  AUTH_TOKEN_MALFORMED: signInAgain("That doesn't look like an access token.", "Paste the whole token your sign-in provider gave you."),
  AUTH_TOKEN_EXPIRED: signInAgain("Your sign-in has expired."),
  AUTH_TOKEN_NOT_YET_VALID: signInAgain("Your access token isn't valid yet.", "Check that this device's clock is right, then sign in again."),
  AUTH_TOKEN_INVALID: signInAgain("We couldn't verify your access token.", "It may be for another site, or it was changed. Sign in again."),
  AUTH_SUBJECT_UNSUPPORTED: signInAgain("The box office can't use this account's id.", "Ask your sign-in provider for an account with a shorter, plain id."),
  AUTH_KEYS_UNAVAILABLE: () => ({ title: "We can't check sign-ins right now.", detail: "Please try again in a moment.", tone: "warn", next: "retry" }),
  // Whose it is.
  USER_MISMATCH: () => ({ title: "You can only do that for your own account.", tone: "error" }),
  SCOPE_REQUIRED: () => ({
    title: "Your account isn't allowed to do that.",
    detail: "Top-ups are credited by the payment provider, not from this page.",
    tone: "error",
  }),
  QUEUE_TOKEN_NOT_YOURS: () => ({
    title: "That queue pass belongs to someone else.",
    detail: "Join the queue with your own account.",
    tone: "error",
    next: "rejoin",
  }),
  // Slow down.
  RATE_LIMITED: (r) => ({
    title: "Too many tries in a short time.",
    detail:
      r.retryAfterMs !== undefined ? `Please wait ${Math.max(1, Math.ceil(r.retryAfterMs / 1000))} s and try again.` : "Please wait a little and try again.",
    tone: "warn",
  }),
  QUEUE_STREAMS_EXCEEDED: () => ({
    title: "Your place in line is open in too many tabs.",
    detail: "This tab checks your position every few seconds instead of live.",
    tone: "info",
  }),
  // The queue.
  QUEUE_TOKEN_MISSING: () => ({
    title: "You need a place in the queue to book.",
    detail: "Join the queue; it only takes a moment when it's quiet.",
    tone: "warn",
    next: "rejoin",
  }),
  QUEUE_TOKEN_INVALID: () => ({ title: "Your queue pass isn't valid any more.", detail: "Join the queue again.", tone: "warn", next: "rejoin" }),
  QUEUE_TOKEN_EXPIRED: () => ({
    title: "Your booking window has closed.",
    detail: "Booking windows are short so everyone in line gets a turn. Join the queue again to keep booking.",
    tone: "warn",
    next: "rejoin",
  }),
  QUEUE_TOKEN_WAITING: (r) => ({
    title: "You're still in line.",
    detail:
      r.metadata.position !== undefined
        ? `${r.metadata.position === "0" ? "You're next" : `${r.metadata.position} ahead of you`}. We'll take you to the seats when it's your turn.`
        : "We'll take you to the seats when it's your turn.",
    tone: "info",
    next: "waiting-room",
  }),
  QUEUE_UNAVAILABLE: () => ({ title: "The waiting room is briefly unavailable.", detail: "Your place is kept; we'll try again.", tone: "warn", next: "retry" }),
  // Seats and payment.
  SEAT_UNAVAILABLE: (r) => ({
    title:
      r.metadata.state === "sold"
        ? `${seat(r)} has just been sold.`
        : r.metadata.state === "locked"
          ? `Someone else is taking ${seat(r).toLowerCase()} right now.`
          : `Someone else just took ${seat(r).toLowerCase()}.`,
    detail: "Please pick another seat; the map is up to date again.",
    tone: "warn",
    next: "pick-seat",
  }),
  HOLD_LIMIT_REACHED: (r) => ({
    title: `You already hold ${r.metadata.max_per_user ? `the most seats allowed at once (${r.metadata.max_per_user})` : "the most seats allowed at once"}.`,
    detail: "Pay for a seat you hold, or release one, before holding another.",
    tone: "warn",
  }),
  HOLD_EXPIRED: () => ({
    title: "Your hold ran out before payment.",
    detail: "The seat went back on sale. Hold it again if it's still free.",
    tone: "warn",
    next: "pick-seat",
  }),
  RESERVATION_NOT_HELD: () => ({ title: "This seat isn't held for you any more.", detail: "Pick a seat and hold it again.", tone: "warn", next: "pick-seat" }),
  ALREADY_PAID: () => ({ title: "This seat is already paid for. It's yours.", tone: "info" }),
  INSUFFICIENT_BALANCE: (r) => {
    const balance = r.metadata.balance !== undefined ? BigInt(r.metadata.balance) : undefined;
    const required = r.metadata.required !== undefined ? BigInt(r.metadata.required) : undefined;
    return {
      title: "Your balance doesn't cover this seat.",
      detail:
        balance !== undefined && required !== undefined
          ? `You have ${won(balance)}; the seat costs ${won(required)}. Add at least ${won(required - balance)} and pay again. Your hold is kept.`
          : "Add funds and pay again. Your hold is kept.",
      tone: "warn",
      next: "top-up",
    };
  },
  BALANCE_LIMIT_EXCEEDED: () => ({ title: "That top-up would take your balance over the maximum a wallet may hold.", tone: "error" }),
  IDEMPOTENCY_KEY_REUSED: () => ({
    title: "That request was already used for something else.",
    detail: "Nothing was changed. Please try again.",
    tone: "error",
    next: "retry",
  }),
  // Not found.
  CONCERT_NOT_FOUND: () => ({ title: "We couldn't find that concert.", detail: "It may have been taken off sale.", tone: "error" }),
  CONCERT_DATE_NOT_FOUND: () => ({ title: "That date isn't on sale.", tone: "error" }),
  SEAT_NOT_FOUND: () => ({ title: "That seat doesn't exist for this show.", tone: "error", next: "pick-seat" }),
  RESERVATION_NOT_FOUND: () => ({ title: "We couldn't find that booking.", tone: "error" }),
  // Retry.
  CONCURRENT_UPDATE: conflict,
  TRANSACTION_CONFLICT: conflict,
  CONCURRENT_INSERT: conflict,
  LOCK_TIMEOUT: busy,
  LOCK_UNAVAILABLE: busy,
  DATABASE_UNAVAILABLE: busy,
  DATABASE_TIMEOUT: busy,
};

const known = new Set<string>(ALL_REASONS);

/** The words for a failed call: by its reason, else by what kind of failure it was. */
export function explain(r: Refusal): Explanation {
  if (r.reason && known.has(r.reason)) return { reason: r.reason, ...WORDS[r.reason as Reason](r) };
  if (r.unreachable)
    return {
      reason: "UNREACHABLE",
      title: "We can't reach the box office from this page.",
      detail:
        "Check your connection. If it keeps happening, this site may not be allowed to call the box office (its address is not in the server's CORS_ORIGINS).",
      tone: "error",
      next: "retry",
    };
  const id = r.requestId ? ` (reference ${r.requestId})` : "";
  switch (r.code) {
    case Code.InvalidArgument:
      return { reason: r.reason ?? "INVALID_ARGUMENT", title: "Some details weren't accepted.", detail: r.message, tone: "error" };
    case Code.Unauthenticated:
      return { reason: r.reason ?? "UNAUTHENTICATED", title: "Please sign in again.", tone: "error", next: "signin" };
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return { reason: r.reason ?? Code[r.code], ...busy(r) };
    case Code.Aborted:
      return { reason: r.reason ?? "ABORTED", ...conflict(r) };
    case Code.Canceled:
      return { reason: "CANCELED", title: "The request was cancelled.", tone: "info" };
    default:
      return {
        reason: r.reason ?? Code[r.code] ?? "UNKNOWN",
        title: "Something went wrong on our side.",
        detail: `Nothing you did caused it. Please try again${id}.`,
        tone: "error",
        next: "retry",
      };
  }
}
