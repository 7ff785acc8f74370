import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { QueueService } from "../../../gen/boxoffice/queue/v1/queue_service_pb.js";
import { principalKey } from "../../rpc/context.js";
import { actingUser, checkTokenOwner } from "../../rpc/identity.js";
import { toQueueTicketInit } from "./queue.mapping.js";
import type { AuthorizeTokenUser, Queue } from "./queue.service.js";

/** The token must be the caller's (or the caller a trusted service): checked before the ticket is read or touched. */
const callerOwns =
  (ctx: HandlerContext): AuthorizeTokenUser =>
  (userId) =>
    checkTokenOwner(ctx.values.get(principalKey), userId);

/** What the handlers use of the queue. */
export type QueueRouteDeps = Pick<Queue, "issueToken" | "getStatus" | "watch">;

/** Thin handlers. `draining` aborts when the server shuts down: open streams then end UNAVAILABLE. */
export function registerQueueRoutes(router: ConnectRouter, queue: QueueRouteDeps, draining: AbortSignal): void {
  router.service(QueueService, {
    async issueToken(req, ctx) {
      return { ticket: toQueueTicketInit(await queue.issueToken(actingUser(ctx, req.userId))) };
    },
    async getQueueStatus(req, ctx) {
      return { ticket: toQueueTicketInit(await queue.getStatus(req.token, callerOwns(ctx))) };
    },
    async *watchQueueStatus(req, ctx) {
      for await (const t of queue.watch(req.token, AbortSignal.any([ctx.signal, draining]), callerOwns(ctx))) {
        yield { ticket: toQueueTicketInit(t) };
      }
      if (draining.aborted) throw new ConnectError("server is shutting down; reconnect to keep watching", Code.Unavailable);
    },
  });
}
