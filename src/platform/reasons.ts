import { ErrorReason, ErrorReasonSchema } from "../../gen/boxoffice/error/v1/error_reason_pb.js";

export { ErrorReason };

/**
 * The ErrorInfo `reason` strings the server sends: one per value of
 * boxoffice.error.v1.ErrorReason (proto/boxoffice/error/v1/error_reason.proto),
 * e.g. "QUEUE_TOKEN_MISSING". protobuf-es names the TypeScript enum's members
 * by the proto names without their "ERROR_REASON_" prefix, which is exactly
 * the wire string; a test holds the two to each other.
 */
export type Reason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

/** What every value's proto name starts with (buf lint's ENUM_VALUE_PREFIX); never part of the wire string. */
const PREFIX = "ERROR_REASON_";

/**
 * The one place the wire string is made from the proto: the value's name
 * without its prefix. Read from the descriptor, not the generated member
 * names, so the rule stated in error_reason.proto is what runs.
 */
const WIRE = new Map<ErrorReason, Reason>(
  ErrorReasonSchema.values
    .filter((v) => v.number !== ErrorReason.UNSPECIFIED)
    .map((v) => {
      if (!v.name.startsWith(PREFIX)) throw new Error(`ErrorReason value ${v.name} lacks the ${PREFIX} prefix`);
      return [v.number as ErrorReason, v.name.slice(PREFIX.length) as Reason];
    }),
);

/** The reason string an ErrorReason value is sent as: reason(ErrorReason.QUEUE_TOKEN_MISSING) is "QUEUE_TOKEN_MISSING". */
export function reason(value: ErrorReason): Reason {
  const wire = WIRE.get(value);
  if (wire === undefined) throw new Error(`not a reason the server sends: ErrorReason ${value}`);
  return wire;
}

/**
 * Every reason by its own name, for code that names one:
 * `failedPrecondition(Reason.HOLD_EXPIRED, ...)`,
 * `errorReason(err) === Reason.ALREADY_PAID`. Built from the enum, so a name
 * that is not in the proto does not compile.
 */
export const Reason: { readonly [R in Reason]: R } = Object.freeze(Object.fromEntries([...WIRE.values()].map((r) => [r, r])) as { [R in Reason]: R });

/** Every reason, in the enum's order. */
export const ALL_REASONS: readonly Reason[] = Object.freeze([...WIRE.values()]);
