// Domain errors of the platform. The one exception filter (http/exception.filter.ts) maps them to HTTP;
// workers map InvalidInputError to BullMQ's UnrecoverableError (no retry).

export abstract class PlatformError extends Error {
  abstract readonly status: 400 | 401 | 404 | 409 | 429 | 503;
  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input: a field, a path, a model directory the engine cannot read. */
export class InvalidInputError extends PlatformError {
  readonly status = 400;
}

export class NotFoundError extends PlatformError {
  readonly status = 404;
  constructor(kind: string, id: string) {
    super(`${kind} ${id} not found`);
  }
}

export class ConflictError extends PlatformError {
  readonly status = 409;
}

/** A dependency (engine, queue) is not there right now. */
export class UnavailableError extends PlatformError {
  readonly status = 503;
}

/** Too much in flight (a deployment's queue bound): retry after `retryAfterSeconds`. */
export class TooManyRequestsError extends PlatformError {
  readonly status = 429;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(v: string): boolean {
  return UUID_RE.test(v);
}
