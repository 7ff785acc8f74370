import type { StoredTicket } from "./queue-store.js";

/** What clients see of a ticket (queue.mapping.ts turns it into the proto's QueueTicket). */
export interface Ticket {
  token: string;
  userId: string;
  state: StoredTicket["state"];
  position: number;
  /** WAITING only; undefined until the rate can be estimated. */
  estimatedWaitMs?: number;
  expiresAt?: Date;
}
