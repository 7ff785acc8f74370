/**
 * Reads the "Errors:" part of an RPC's comment, the list the protos promise:
 *
 *   Errors:
 *     INVALID_ARGUMENT: a field breaks its rule (violations, no reason);
 *       INVALID_PAGE_TOKEN, USER_ID_REQUIRED.
 *     PERMISSION_DENIED: USER_MISMATCH.
 *
 * A code's entry runs until the next line that starts with a code.
 */
export interface DocumentedErrors {
  /** gRPC code name (INVALID_ARGUMENT) -> reasons listed for it. */
  reasons: Map<string, Set<string>>;
  /** Codes documented as refused without a reason (protovalidate violations). */
  violations: Set<string>;
}

const CODES = new Set([
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
]);

export function parseDocumentedErrors(comment: string, knownReasons: Set<string>): DocumentedErrors {
  const result: DocumentedErrors = { reasons: new Map(), violations: new Set() };
  const lines = comment.split("\n");
  const start = lines.findIndex((l) => /^\s*Errors:\s*$/.test(l));
  if (start < 0) return result;
  let code: string | undefined;
  for (const line of lines.slice(start + 1)) {
    const head = /^\s*([A-Z_]+):(.*)$/.exec(line);
    let text = line;
    if (head && CODES.has(head[1])) {
      code = head[1];
      text = head[2];
      if (!result.reasons.has(code)) result.reasons.set(code, new Set());
    }
    if (!code) continue;
    for (const word of text.match(/\b[A-Z][A-Z0-9_]*[A-Z0-9]\b/g) ?? []) if (knownReasons.has(word)) result.reasons.get(code)!.add(word);
    if (/violation/i.test(text)) result.violations.add(code);
  }
  return result;
}
