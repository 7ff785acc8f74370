/** The waiting room: a ticket, the refusal while WAITING, admission, and the status RPCs' refusals. */
import { Code, ConnectError } from "@connectrpc/connect";
import { expect, forUser, queueStatus, rpc, type Ctx } from "../context.js";
import { detailsOf, expectRefusal } from "../refusal.js";
import { skip } from "../report.js";
import type { Msg, Session } from "../session.js";

/** A token this server never signed, shaped like one (so it passes validation). */
export const forgedQueueToken = (): string => `forged.${Math.random().toString(36).slice(2)}.${"A".repeat(24)}`;

/** Runs the queue checks for the main user; the ACTIVE token, if one was had. */
export async function queueChecks(ctx: Ctx, concertId: string | undefined): Promise<string | undefined> {
  const { s, report, image } = ctx;
  const issue = rpc(image, "queue", "IssueToken");
  const WAITING = queueStatus(image, "WAITING");
  const ACTIVE = queueStatus(image, "ACTIVE");

  const first = await report.check("IssueToken: a WAITING or ACTIVE ticket for the user", async () => {
    const t = (await s.unary(issue, forUser(s))).ticket as Msg | undefined;
    expect(t?.token, "the response has no ticket token");
    expect(t.userId === s.user, `ticket for ${t.userId}, not ${s.user}`);
    expect(t.status === WAITING || t.status === ACTIVE, `ticket status ${t.status}`);
    return t;
  });

  await report.check("a gated call while WAITING: FAILED_PRECONDITION QUEUE_TOKEN_WAITING, metadata position, the ticket as a detail", async () => {
    if (!first) skip("no ticket");
    if (first.status !== WAITING) skip("the ticket was ACTIVE at once: no WAITING state to observe");
    if (!concertId) skip("no concert to ask about");
    const dates = rpc(image, "concert", "ListAvailableDates");
    const err = await s.unary(dates, { concertId }, { queueToken: first.token }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    if (!err) skip("admitted before the call: no WAITING state to observe");
    const info = expectRefusal(image, dates, err, Code.FailedPrecondition, "QUEUE_TOKEN_WAITING");
    expect(/^\d+$/.test(info.metadata.position ?? ""), `metadata position ${JSON.stringify(info.metadata.position)}`);
    const tickets = detailsOf(image, err, "boxoffice.queue.v1.QueueTicket");
    expect(tickets.length === 1, `${tickets.length} QueueTicket details`);
    expect(tickets[0].userId === s.user && tickets[0].status === WAITING, "the ticket detail is not the caller's WAITING ticket");
  });

  await report.check("IssueToken again: the user's live ticket, not a second place in line", async () => {
    if (!first) skip("no ticket");
    const again = (await s.unary(issue, forUser(s))).ticket as Msg;
    expect(again.userId === s.user, `ticket for ${again.userId}`);
    if (again.status === first.status) expect(again.token === first.token, "a different token for the same ticket state");
    else expect(again.status === ACTIVE, `status went from ${first.status} to ${again.status}`);
  });

  let token = await report.check("WatchQueueStatus: streams the ticket until it is ACTIVE", async () => {
    if (!first) skip("no ticket");
    return watchUntilActive(ctx, s, first.token);
  });
  // The rest of the suite needs an ACTIVE token even if the stream misbehaved.
  if (!token && first) token = await pollUntilActive(ctx, s, first.token).catch(() => undefined);

  await report.check("GetQueueStatus: ACTIVE, position 0, with the end of the booking window", async () => {
    if (!token) skip("no ACTIVE token");
    const t = (await s.unary(rpc(image, "queue", "GetQueueStatus"), { token })).ticket as Msg;
    expect(t.status === ACTIVE, `status ${t.status}`);
    expect(t.userId === s.user, `ticket for ${t.userId}`);
    expect(BigInt(t.position ?? 0) === 0n, `position ${t.position}`);
    expect(t.expiresAt, "no expires_at");
  });

  for (const name of ["GetQueueStatus", "WatchQueueStatus"]) {
    await report.check(`${name} of a token the server did not sign: NOT_FOUND QUEUE_TOKEN_INVALID`, async () => {
      const m = rpc(image, "queue", name);
      expectRefusal(image, m, await s.refusal(m, { token: forgedQueueToken() }), Code.NotFound, "QUEUE_TOKEN_INVALID");
    });
  }
  return token;
}

/** Follows WatchQueueStatus until ACTIVE; the newest token it carried (re-signed on admission). */
export async function watchUntilActive(ctx: Ctx, s: Session, token: string): Promise<string> {
  const { image } = ctx;
  const ACTIVE = queueStatus(image, "ACTIVE");
  const EXPIRED = queueStatus(image, "EXPIRED");
  const signal = AbortSignal.timeout(ctx.admissionTimeoutMs);
  let messages = 0;
  try {
    for await (const m of s.stream(rpc(image, "queue", "WatchQueueStatus"), { token }, { signal })) {
      const t = m.ticket as Msg;
      messages++;
      expect(t?.userId === s.user, `an update for ${t?.userId}`);
      expect(t.status !== EXPIRED, "the ticket expired while waiting");
      if (t.status === ACTIVE) return t.token || token;
    }
  } catch (err) {
    if (signal.aborted) throw new Error(`not ACTIVE within ${ctx.admissionTimeoutMs} ms (${messages} updates)`);
    throw err;
  }
  throw new Error(`the stream ended after ${messages} updates without ACTIVE`);
}

/** Polls GetQueueStatus (which keeps a waiting ticket in line) until ACTIVE. */
export async function pollUntilActive(ctx: Ctx, s: Session, token: string): Promise<string> {
  const { image } = ctx;
  const ACTIVE = queueStatus(image, "ACTIVE");
  const deadline = Date.now() + ctx.admissionTimeoutMs;
  for (;;) {
    const t = (await s.unary(rpc(image, "queue", "GetQueueStatus"), { token })).ticket as Msg;
    if (t.status === ACTIVE) return t.token || token;
    if (Date.now() > deadline) throw new Error(`not ACTIVE within ${ctx.admissionTimeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** IssueToken and wait for admission: for a second user, and for a new window after a payment. */
export async function activeToken(ctx: Ctx, s: Session): Promise<string> {
  const t = (await s.unary(rpc(ctx.image, "queue", "IssueToken"), forUser(s))).ticket as Msg;
  return pollUntilActive(ctx, s, t.token);
}
