import { Code } from "@connectrpc/connect";

/** "OK", "NOT_FOUND", ... as gRPC spells them, for logs and metric labels. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return (Code[code] ?? "UNKNOWN")
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toUpperCase()
    .replace("CANCELED", "CANCELLED");
}

/** Every gRPC code's name but OK's, as gRPC spells them. */
export const ERROR_CODE_NAMES: readonly string[] = Object.values(Code)
  .filter((v): v is Code => typeof v === "number")
  .map(codeName);
