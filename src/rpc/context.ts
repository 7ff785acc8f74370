import { createContextKey } from "@connectrpc/connect";

/** Correlates a call's log line with what the client saw (`x-request-id`). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The user a call acts for, taken from its queue token by the gate. */
export interface Caller {
  userId: string;
  token: string;
}

export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller from the queue token" });
