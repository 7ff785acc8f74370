import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { PaymentSchema } from "../../../gen/boxoffice/reservation/v1/reservation_pb.js";
import type { PayReservationResponseSchema } from "../../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { toReservationInit } from "../reservation/reservation.mapping.js";
import type { PaymentView, PayResult } from "./payment.service.js";

export function toPaymentInit(p: PaymentView): MessageInitShape<typeof PaymentSchema> {
  return { paymentId: p.id, reservationId: p.reservationId, amount: BigInt(p.amount), paidAt: timestampFromDate(p.paidAt) };
}

export function toPayReservationResponseInit(r: PayResult): MessageInitShape<typeof PayReservationResponseSchema> {
  return { reservation: toReservationInit(r.reservation), payment: toPaymentInit(r.payment), balance: BigInt(r.balance) };
}
