/** What every check gets: the session, the report, and the RPCs by name. */
import type { DescMethod } from "@bufbuild/protobuf";
import type { Image } from "./image.js";
import type { Report } from "./report.js";
import type { Msg, Session } from "./session.js";

export interface Ctx {
  s: Session;
  report: Report;
  image: Image;
  /** How long to wait for a queue token to become ACTIVE. */
  admissionTimeoutMs: number;
  /** A session for a second user (AUTH_MODE=none only), for races over one seat. */
  other?: Session;
}

const SERVICES = {
  queue: "boxoffice.queue.v1.QueueService",
  concert: "boxoffice.concert.v1.ConcertService",
  reservation: "boxoffice.reservation.v1.ReservationService",
  wallet: "boxoffice.wallet.v1.WalletService",
} as const;

export const rpc = (image: Image, service: keyof typeof SERVICES, name: string): DescMethod => image.method(SERVICES[service], name);

export const queueStatus = (image: Image, name: "WAITING" | "ACTIVE" | "EXPIRED"): number =>
  image.enumValue("boxoffice.queue.v1.QueueStatus", `QUEUE_STATUS_${name}`);

export const reservationStatus = (image: Image, name: "HELD" | "CONFIRMED" | "CANCELLED" | "EXPIRED"): number =>
  image.enumValue("boxoffice.reservation.v1.ReservationStatus", `RESERVATION_STATUS_${name}`);

/** The user_id a request names: the session's user (required with AUTH_MODE=none, the caller itself with jwt). */
export const forUser = (s: Session): Msg => ({ userId: s.user });

export function expect(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

export const randomKey = (label: string): string => `contract-${label}-${Math.random().toString(36).slice(2, 12)}`;
