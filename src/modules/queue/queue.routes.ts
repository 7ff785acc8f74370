import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { QueueService } from "../../../gen/boxoffice/queue/v1/queue_service_pb.js";
import { toQueueTicketInit } from "./queue.mapping.js";
import type { Queue } from "./queue.service.js";

/** Thin handlers. `draining` aborts when the server shuts down: open streams then end UNAVAILABLE. */
export function registerQueueRoutes(router: ConnectRouter, queue: Queue, draining: AbortSignal): void {
  router.service(QueueService, {
    async issueToken(req) {
      return { ticket: toQueueTicketInit(await queue.issueToken(req.userId)) };
    },
    async getQueueStatus(req) {
      return { ticket: toQueueTicketInit(await queue.getStatus(req.token)) };
    },
    async *watchQueueStatus(req, ctx) {
      for await (const t of queue.watch(req.token, AbortSignal.any([ctx.signal, draining]))) {
        yield { ticket: toQueueTicketInit(t) };
      }
      if (draining.aborted) throw new ConnectError("server is shutting down; reconnect to keep watching", Code.Unavailable);
    },
  });
}
