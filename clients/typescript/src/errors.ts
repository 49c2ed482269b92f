// Typed errors of promoflow calls: a PromoflowError subclass per status code,
// with the google.rpc.BadRequest field violations of INVALID_ARGUMENT errors
// decoded from the grpc-status-details-bin trailer.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";

/** One problem of a request: the field path and what is wrong with it. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/**
 * A failed promoflow call. It is a ConnectError (same `code`, `rawMessage`,
 * `metadata`, `details`, `findDetails`), narrowed to a subclass per code
 * (`NotFoundError`, `InvalidArgumentError`, …). `violations` holds every
 * field violation of the google.rpc.BadRequest detail (empty when none).
 */
export class PromoflowError extends ConnectError {
  readonly violations: readonly FieldViolation[];

  constructor(error: ConnectError) {
    super(error.rawMessage, error.code, error.metadata, undefined, error.cause ?? error);
    this.details = error.details;
    this.violations = error.findDetails(BadRequestSchema).flatMap((bad) =>
      bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    );
    if (this.violations.length > 0) {
      this.message += this.violations.map((v) => `\n  ${v.field}: ${v.description}`).join("");
    }
  }

  /** The field paths of `violations`, in order. */
  get violationFields(): string[] {
    return this.violations.map((v) => v.field);
  }

  // ConnectError's instanceof accepts any ConnectError-like value; subclasses
  // here use the ordinary prototype check so `instanceof NotFoundError` is
  // exact.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

export class CanceledError extends PromoflowError {}
export class UnknownError extends PromoflowError {}
export class InvalidArgumentError extends PromoflowError {}
export class DeadlineExceededError extends PromoflowError {}
export class NotFoundError extends PromoflowError {}
export class AlreadyExistsError extends PromoflowError {}
export class PermissionDeniedError extends PromoflowError {}
export class ResourceExhaustedError extends PromoflowError {}
export class FailedPreconditionError extends PromoflowError {}
export class AbortedError extends PromoflowError {}
export class OutOfRangeError extends PromoflowError {}
export class UnimplementedError extends PromoflowError {}
export class InternalError extends PromoflowError {}
export class UnavailableError extends PromoflowError {}
export class DataLossError extends PromoflowError {}
export class UnauthenticatedError extends PromoflowError {}

const BY_CODE: Record<Code, new (e: ConnectError) => PromoflowError> = {
  [Code.Canceled]: CanceledError,
  [Code.Unknown]: UnknownError,
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.DeadlineExceeded]: DeadlineExceededError,
  [Code.NotFound]: NotFoundError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.Aborted]: AbortedError,
  [Code.OutOfRange]: OutOfRangeError,
  [Code.Unimplemented]: UnimplementedError,
  [Code.Internal]: InternalError,
  [Code.Unavailable]: UnavailableError,
  [Code.DataLoss]: DataLossError,
  [Code.Unauthenticated]: UnauthenticatedError,
};

/** Converts any error of a call into the PromoflowError subclass of its code. */
export function toPromoflowError(reason: unknown): PromoflowError {
  if (reason instanceof PromoflowError) {
    return reason;
  }
  const error = ConnectError.from(reason);
  return new BY_CODE[error.code](error);
}
