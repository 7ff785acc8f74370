import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { QueueStatus, type QueueTicketSchema } from "../../../gen/boxoffice/queue/v1/queue_pb.js";
import type { Ticket } from "./queue.service.js";

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
