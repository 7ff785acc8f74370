/**
 * The queue gate. Which RPCs are gated comes from the image: the access
 * option (boxoffice.options.v1.access, queue_token) where the image has it,
 * else the comment documenting QUEUE_TOKEN_MISSING; where both exist they
 * must agree.
 */
import { randomUUID } from "node:crypto";
import { getExtension, hasExtension, type DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expect, type Ctx } from "../context.js";
import { expectRefusal } from "../refusal.js";
import type { Msg } from "../session.js";
import { forgedQueueToken } from "./queue.js";

const ACCESS_OPTION = "boxoffice.options.v1.access";

/** true/false from the access option; undefined when the image has no such option on the RPC. */
function gateOption(ctx: Ctx, method: DescMethod): boolean | undefined {
  const ext = ctx.image.registry.getExtension(ACCESS_OPTION);
  const options = method.proto.options;
  if (!ext || !options || !hasExtension(options, ext)) return undefined;
  const access = getExtension(options, ext) as Msg;
  return access.queueToken === ctx.image.enumValue("boxoffice.options.v1.QueueToken", "QUEUE_TOKEN_REQUIRED");
}

const gateDocumented = (ctx: Ctx, method: DescMethod): boolean =>
  ctx.image.documented(method).reasons.get("FAILED_PRECONDITION")?.has(ctx.image.reason("QUEUE_TOKEN_MISSING")) ?? false;

export function gatedRpcs(ctx: Ctx): DescMethod[] {
  return ctx.image.rpcs().filter((m) => gateOption(ctx, m) ?? gateDocumented(ctx, m));
}

/** A request the RPC would accept but for the gate, so that the refusal is the gate's. */
function sampleRequest(method: DescMethod, show: { concertId: string; date: string }): Msg {
  const byField: Record<string, unknown> = { concertId: show.concertId, date: show.date, seatNumber: 1, reservationId: randomUUID() };
  return Object.fromEntries(method.input.fields.filter((f) => f.localName in byField).map((f) => [f.localName, byField[f.localName]]));
}

export async function gateChecks(ctx: Ctx, show: { concertId: string; date: string }): Promise<void> {
  const { s, report, image } = ctx;
  if (image.registry.getExtension(ACCESS_OPTION) && image.hasComments) {
    await report.check("every RPC's access option (queue_token) agrees with the gate errors its comment documents", async () => {
      const disagree = image.rpcs().filter((m) => {
        const option = gateOption(ctx, m);
        return option !== undefined && option !== gateDocumented(ctx, m);
      });
      expect(disagree.length === 0, `disagree: ${disagree.map((m) => m.name).join(", ")}`);
    });
  }
  const gated = gatedRpcs(ctx);
  await report.check("the image marks some RPCs as gated by the queue", async () => {
    expect(gated.length > 0, "no RPC needs a queue token, by option or by comment");
  });
  for (const method of gated) {
    await report.check(`${method.name} without x-queue-token: FAILED_PRECONDITION QUEUE_TOKEN_MISSING`, async () => {
      expectRefusal(image, method, await s.refusal(method, sampleRequest(method, show)), Code.FailedPrecondition, "QUEUE_TOKEN_MISSING");
    });
    await report.check(`${method.name} with a queue token the server did not sign: FAILED_PRECONDITION QUEUE_TOKEN_INVALID`, async () => {
      const err = await s.refusal(method, sampleRequest(method, show), { queueToken: forgedQueueToken() });
      expectRefusal(image, method, err, Code.FailedPrecondition, "QUEUE_TOKEN_INVALID");
    });
  }
}
