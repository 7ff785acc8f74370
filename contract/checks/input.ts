/**
 * Bad input is INVALID_ARGUMENT, never INTERNAL: for every request field the
 * image gives protovalidate rules, a well-formed request with only that field
 * broken must be refused with a violation naming it.
 */
import { ScalarType, hasExtension, type DescField, type DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Ctx } from "../context.js";
import { errorInfoOf, expectViolation } from "../refusal.js";
import { skip } from "../report.js";
import type { CallAs, Msg } from "../session.js";
import { gatedRpcs } from "./gate.js";

/** A value no rule of this repository accepts: too long for any max_len, outside any pattern and uuid; below any lower bound. */
function brokenValue(field: DescField): unknown {
  if (field.fieldKind !== "scalar") return undefined;
  switch (field.scalar) {
    case ScalarType.STRING:
      return "!".repeat(300);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return -1;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return -1n;
    default:
      return undefined;
  }
}

export interface ValidInputs {
  /** A request each RPC accepts, by method name. */
  requests: Record<string, Msg>;
  queueToken?: string;
}

export async function inputChecks(ctx: Ctx, valid: ValidInputs): Promise<void> {
  const { s, report, image } = ctx;
  const rule = image.registry.getExtension("buf.validate.field");
  if (!rule) {
    await report.check("bad input is INVALID_ARGUMENT", async () => skip("the image has no protovalidate rules"));
    return;
  }
  const gated = new Set(gatedRpcs(ctx));
  for (const method of image.rpcs()) {
    for (const field of method.input.fields) {
      if (!field.proto.options || !hasExtension(field.proto.options, rule)) continue;
      const bad = brokenValue(field);
      if (bad === undefined) continue;
      await report.check(`${method.name} with a malformed ${field.name}: INVALID_ARGUMENT naming it`, async () => {
        const base = valid.requests[method.name];
        if (!base) skip("no valid request to start from");
        const as = callAs(ctx, method, gated.has(method), valid);
        const err = await s.refusal(method, { ...base, [field.localName]: bad }, as);
        if (err.code === Code.Internal) throw new Error(`INTERNAL: ${err.rawMessage}`);
        // With jwt, a user_id that is not the caller may be refused as such before its form is looked at.
        if (s.mode === "jwt" && field.name === "user_id" && errorInfoOf(image, err)?.reason === image.reason("USER_MISMATCH")) return;
        expectViolation(image, method, err, field.name);
      });
    }
  }
}

function callAs(ctx: Ctx, method: DescMethod, gated: boolean, valid: ValidInputs): CallAs {
  const { s } = ctx;
  if (gated && !valid.queueToken) skip("no ACTIVE queue token");
  if (method.name === "ChargeBalance" && s.mode === "jwt") {
    if (!s.chargeBearer) skip("AUTH_MODE=jwt: ChargeBalance needs --charge-token");
    return { bearer: s.chargeBearer };
  }
  return gated ? { queueToken: valid.queueToken } : {};
}
