/**
 * Every conversion between the queue's own types and its proto messages. The
 * service knows no proto type; the routes and the service's refusals come
 * here for them.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { QueueStatus, QueueTicketSchema } from "../../../gen/boxoffice/queue/v1/queue_pb.js";
import type { ExtraDetail } from "../../platform/errors.js";
import type { Ticket } from "./ticket.js";

const STATUS = { WAITING: QueueStatus.WAITING, ACTIVE: QueueStatus.ACTIVE, EXPIRED: QueueStatus.EXPIRED } as const;

export function toQueueTicketInit(t: Ticket): MessageInitShape<typeof QueueTicketSchema> {
  return {
    token: t.token,
    userId: t.userId,
    status: STATUS[t.state],
    position: BigInt(t.position),
    estimatedWait: t.estimatedWaitMs === undefined ? undefined : durationFromMs(t.estimatedWaitMs),
    expiresAt: t.expiresAt ? timestampFromDate(t.expiresAt) : undefined,
  };
}

/** The second detail of a QUEUE_TOKEN_WAITING refusal: the caller's ticket, position and estimate included. */
export function waitingTicketDetail(t: Ticket): ExtraDetail<typeof QueueTicketSchema> {
  return { desc: QueueTicketSchema, value: toQueueTicketInit(t) };
}
