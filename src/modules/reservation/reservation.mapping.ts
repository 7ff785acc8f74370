import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ReservationStatus, type ReservationSchema } from "../../../gen/boxoffice/reservation/v1/reservation_pb.js";
import type { ReservationView } from "./reservation.service.js";

const STATUS = {
  HELD: ReservationStatus.HELD,
  CONFIRMED: ReservationStatus.CONFIRMED,
  CANCELLED: ReservationStatus.CANCELLED,
  EXPIRED: ReservationStatus.EXPIRED,
} as const;

export function toReservationInit(r: ReservationView): MessageInitShape<typeof ReservationSchema> {
  return {
    reservationId: r.id,
    userId: r.userId,
    concertId: r.concertId,
    date: r.date,
    seatNumber: r.seatNumber,
    amount: BigInt(r.amount),
    status: STATUS[r.status],
    holdExpiresAt: timestampFromDate(r.holdExpiresAt),
    createdAt: timestampFromDate(r.createdAt),
    confirmedAt: r.confirmedAt ? timestampFromDate(r.confirmedAt) : undefined,
  };
}
