import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Reason } from "./reasons.js";

/** The domain every ErrorInfo we send is scoped to. */
export const ERROR_DOMAIN = "boxoffice";

/** An extra detail message to attach to an error besides its ErrorInfo. */
export interface ExtraDetail<D extends DescMessage = DescMessage> {
  desc: D;
  value: MessageInitShape<D>;
}

/**
 * An expected failure: a gRPC code plus a stable reason clients can branch on,
 * carried as a google.rpc.ErrorInfo detail. The reason is one of the proto's
 * ErrorReason values (`Reason.X`, see reasons.ts), never a free string.
 */
export function domainError(code: Code, reason: Reason, message: string, metadata: Record<string, string> = {}, extra: ExtraDetail[] = []): ConnectError {
  const info = create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata });
  return new ConnectError(message, code, undefined, [{ desc: ErrorInfoSchema, value: info }, ...extra]);
}

/** The ErrorInfo reason of an error, if it carries one (compare with `Reason.X`). */
export function errorReason(err: unknown): string | undefined {
  const ce = ConnectError.from(err);
  return ce.findDetails(ErrorInfoSchema)[0]?.reason;
}

export const notFound = (reason: Reason, message: string, metadata?: Record<string, string>) => domainError(Code.NotFound, reason, message, metadata);

export const invalidArgument = (reason: Reason, message: string, metadata?: Record<string, string>) =>
  domainError(Code.InvalidArgument, reason, message, metadata);

export const failedPrecondition = (reason: Reason, message: string, metadata?: Record<string, string>, extra?: ExtraDetail[]) =>
  domainError(Code.FailedPrecondition, reason, message, metadata, extra);
