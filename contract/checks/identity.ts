/** Who the server thinks is calling: AUTH_MODE=none (user_id trusted, required) or jwt (bearer tokens). */
import { Code } from "@connectrpc/connect";
import { rpc, type Ctx } from "../context.js";
import { errorInfoOf, expectRefusal } from "../refusal.js";
import { skip } from "../report.js";
import type { Session } from "../session.js";

/** Asks GetBalance for nobody without a bearer token: the reason tells the mode. */
export async function detectMode(ctx: Pick<Ctx, "report" | "image">, probe: Session): Promise<"none" | "jwt" | undefined> {
  const { report, image } = ctx;
  const m = rpc(image, "wallet", "GetBalance");
  return report.check(
    "GetBalance naming nobody, no bearer token: INVALID_ARGUMENT USER_ID_REQUIRED (AUTH_MODE=none) or UNAUTHENTICATED AUTH_TOKEN_MISSING (jwt)",
    async () => {
      const err = await probe.refusal(m, {}, { bearer: null });
      if (errorInfoOf(image, err)?.reason === image.reason("AUTH_TOKEN_MISSING")) {
        expectRefusal(image, m, err, Code.Unauthenticated, "AUTH_TOKEN_MISSING");
        return "jwt";
      }
      expectRefusal(image, m, err, Code.InvalidArgument, "USER_ID_REQUIRED");
      return "none";
    },
  );
}

export async function identityChecks(ctx: Ctx): Promise<void> {
  const { s, report, image } = ctx;
  const m = rpc(image, "wallet", "GetBalance");
  const jwtOnly = () => {
    if (s.mode !== "jwt") skip("AUTH_MODE=none verifies nobody");
  };
  await report.check("GetBalance with a bearer token that is not a JWT: UNAUTHENTICATED AUTH_TOKEN_MALFORMED", async () => {
    jwtOnly();
    expectRefusal(image, m, await s.refusal(m, {}, { bearer: "not-a-jwt" }), Code.Unauthenticated, "AUTH_TOKEN_MALFORMED");
  });
  await report.check("GetBalance naming another user: PERMISSION_DENIED USER_MISMATCH", async () => {
    jwtOnly();
    expectRefusal(image, m, await s.refusal(m, { userId: `${s.user}-other` }), Code.PermissionDenied, "USER_MISMATCH");
  });
  await report.check("IssueToken naming nobody: INVALID_ARGUMENT USER_ID_REQUIRED", async () => {
    if (s.mode !== "none") skip("with AUTH_MODE=jwt the caller is the bearer token's sub");
    const issue = rpc(image, "queue", "IssueToken");
    expectRefusal(image, issue, await s.refusal(issue, {}), Code.InvalidArgument, "USER_ID_REQUIRED");
  });
}
