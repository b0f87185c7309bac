import { ArgumentsHost, Catch, HttpException, HttpStatus, Logger, type ExceptionFilter } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { PlatformError, TooManyRequestsError } from '../errors';
import { isOpenAIPath, toOpenAIErrorBody } from '../serving/openai-errors';
import { pgCode, PG_FOREIGN_KEY_VIOLATION, PG_INVALID_TEXT, PG_UNIQUE_VIOLATION } from '../repositories/pg-errors';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  details?: unknown;
}

/** Maps any thrown value to `{statusCode, error, message, details?}` (pure, for tests). */
export function toErrorBody(err: unknown): ErrorBody {
  const body = (statusCode: number, message: string, details?: unknown): ErrorBody => ({
    statusCode,
    error: STATUS_CODES[statusCode] ?? 'Error',
    message,
    ...(details === undefined ? {} : { details }),
  });
  if (err instanceof PlatformError) return body(err.status, err.message, err.details);
  if (err instanceof HttpException) {
    const res = err.getResponse();
    const msg = typeof res === 'string' ? res : (res as { message?: unknown }).message;
    return body(err.getStatus(), Array.isArray(msg) ? msg.join(', ') : String(msg ?? err.message));
  }
  // Errors raised before routing (body-parser: malformed JSON, payload too large) carry a 4xx status.
  const status = (err as { status?: unknown; statusCode?: unknown })?.status ?? (err as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const e = err as Error & { type?: string; limit?: number; length?: number };
    if (e.type === 'entity.parse.failed') return body(status, `request body is not valid JSON: ${e.message}`);
    if (e.type === 'entity.too.large') {
      return body(status, `request body of ${e.length ?? 'more than ' + e.limit} bytes is larger than the limit of ${e.limit} bytes (BODY_LIMIT_BYTES)`);
    }
    return body(status, e.message);
  }
  switch (pgCode(err)) {
    case PG_UNIQUE_VIOLATION:
      return body(409, 'conflicts with an existing record');
    case PG_FOREIGN_KEY_VIOLATION:
      return body(409, 'refers to a record that does not exist');
    case PG_INVALID_TEXT:
      return body(400, 'malformed identifier or value');
  }
  return body(HttpStatus.INTERNAL_SERVER_ERROR, 'internal error');
}

/** The one exception filter: every error of the HTTP API leaves through here. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(err: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<{ headersSent: boolean; status(n: number): { json(b: unknown): void }; setHeader(k: string, v: string): void; destroy?(): void }>();
    const req = http.getRequest<{ originalUrl?: string; url?: string } | undefined>();
    const body = toErrorBody(err);
    if (body.statusCode >= 500) this.logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    if (res.headersSent) {
      res.destroy?.(); // a streamed download broke midway: the client sees a truncated response
      return;
    }
    if (err instanceof TooManyRequestsError) res.setHeader('Retry-After', String(err.retryAfterSeconds));
    // /v1 speaks OpenAI's error object, so the official clients raise their own error classes.
    res.status(body.statusCode).json(isOpenAIPath(req?.originalUrl ?? req?.url) ? toOpenAIErrorBody(body) : body);
  }
}
