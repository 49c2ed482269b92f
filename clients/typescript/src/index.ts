// @promoflow/client: the promoflow gRPC API for TypeScript (Protobuf-ES v2 +
// Connect-ES v2 over the gRPC protocol). The generated messages and service
// descriptors are re-exported as they are.
export { bearer, createClient, typedErrors, type ClientOptions, type PromoflowClient } from "./client.js";
export * from "./errors.js";
export {
  FINAL_RELEASE_STATUSES,
  isRetryable,
  waitRelease,
  watchRelease,
  watchReleases,
  type WatchOptions,
  type WatchReleasesOptions,
} from "./watch.js";
export * from "./gen/promoflow/v1/access_pb.js";
export * from "./gen/promoflow/v1/environment_pb.js";
export * from "./gen/promoflow/v1/workflow_pb.js";
export * from "./gen/promoflow/v1/product_pb.js";
export * from "./gen/promoflow/v1/flow_pb.js";
export * from "./gen/promoflow/v1/release_pb.js";
export { BadRequestSchema, type BadRequest } from "./gen/google/rpc/error_details_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
export { create, toJson, fromJson } from "@bufbuild/protobuf";
