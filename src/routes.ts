import type { ConnectRouter } from "@connectrpc/connect";
import type { DescFile } from "@bufbuild/protobuf";
import { file_boxoffice_concert_v1_concert_service } from "../gen/boxoffice/concert/v1/concert_service_pb.js";
import { file_boxoffice_queue_v1_queue_service } from "../gen/boxoffice/queue/v1/queue_service_pb.js";
import { file_boxoffice_reservation_v1_reservation_service } from "../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { file_boxoffice_wallet_v1_wallet_service } from "../gen/boxoffice/wallet/v1/wallet_service_pb.js";
import { Health, file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { file_boxoffice_error_v1_error_reason } from "../gen/boxoffice/error/v1/error_reason_pb.js";
import type { Deps } from "./deps.js";
import { registerConcertRoutes } from "./modules/concert/concert.routes.js";
import { createPayReservationHandler } from "./modules/payment/payment.routes.js";
import { registerQueueRoutes } from "./modules/queue/queue.routes.js";
import { registerReservationRoutes } from "./modules/reservation/reservation.routes.js";
import { registerWalletRoutes } from "./modules/wallet/wallet.routes.js";
import { HealthState, registerHealth } from "./rpc/health.js";
import { BOXOFFICE_SERVICES } from "./rpc/method-options.js";
import { REFLECTION_SERVICES, ReflectionIndex, registerReflection } from "./rpc/reflection.js";

/** The public API: what health reports on and reflection describes. */
export const API_SERVICES = BOXOFFICE_SERVICES;

const API_FILES: DescFile[] = [
  file_boxoffice_queue_v1_queue_service,
  file_boxoffice_concert_v1_concert_service,
  file_boxoffice_reservation_v1_reservation_service,
  file_boxoffice_wallet_v1_wallet_service,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
  // Not imported by any service, but sent in error details: clients may ask for it.
  file_google_rpc_error_details,
  // The ErrorInfo reasons those details carry, as the proto enum that lists them.
  file_boxoffice_error_v1_error_reason,
];

export function createHealthState(): HealthState {
  return new HealthState(API_SERVICES.map((s) => s.typeName));
}

/** Registers every service, each module's handlers on that module's own deps. */
export function createRoutes(deps: Deps, health: HealthState, draining: AbortSignal) {
  const reflection = new ReflectionIndex(API_FILES, [...API_SERVICES.map((s) => s.typeName), Health.typeName, ...REFLECTION_SERVICES]);
  return (router: ConnectRouter) => {
    registerQueueRoutes(router, deps.queue, draining);
    registerConcertRoutes(router, deps.modules.concert);
    registerReservationRoutes(router, deps.modules.reservation, createPayReservationHandler(deps.modules.payment));
    registerWalletRoutes(router, deps.modules.wallet);
    registerHealth(router, health, draining);
    registerReflection(router, reflection);
  };
}
