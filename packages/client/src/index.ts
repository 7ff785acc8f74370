/**
 * @boxoffice/client: the boxoffice API for browsers. The generated services
 * and messages (without protovalidate's descriptors), createBoxofficeClient()
 * over Connect-Web or gRPC-Web, and refusalOf() for the ErrorInfo reason and
 * the details a refusal carries.
 */
export { createBoxofficeClient, QUEUE_TOKEN_HEADER, type BoxofficeClient, type BoxofficeClientOptions, type Protocol } from "./client.js";
export { ALL_REASONS, ERROR_DOMAIN, REASONS, Reason, errorReason, refusalOf, waitingTicket, type Refusal } from "./errors.js";
export { ErrorReason } from "./gen/boxoffice/error/v1/error_reason_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

export * from "./gen/boxoffice/concert/v1/concert_pb.js";
export * from "./gen/boxoffice/concert/v1/concert_service_pb.js";
export * from "./gen/boxoffice/queue/v1/queue_pb.js";
export * from "./gen/boxoffice/queue/v1/queue_service_pb.js";
export * from "./gen/boxoffice/reservation/v1/reservation_pb.js";
export * from "./gen/boxoffice/reservation/v1/reservation_service_pb.js";
export * from "./gen/boxoffice/wallet/v1/wallet_pb.js";
export * from "./gen/boxoffice/wallet/v1/wallet_service_pb.js";
export { ErrorInfoSchema, RetryInfoSchema, type ErrorInfo, type RetryInfo } from "./gen/google/rpc/error_details_pb.js";
export { durationMs, timestampDate, timestampMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
