// OpenAI's error object, `{error: {message, type, param, code}}`, for every error under /v1 (the official clients
// map the status to their own error classes: 400 BadRequestError, 404 NotFoundError, 429 RateLimitError...).
import type { ErrorBody } from '../http/exception.filter';
import type { FieldError } from '../jobs/job-params';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Extra fields an error may carry in its `details` for the OpenAI body. */
export interface OpenAIErrorDetails {
  param?: string;
  code?: string;
}

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable_error',
};

/** Maps the platform's error body to OpenAI's (pure, for tests). */
export function toOpenAIErrorBody(body: ErrorBody): OpenAIErrorBody {
  const details = body.details as (OpenAIErrorDetails & Record<string, unknown>) | FieldError[] | undefined;
  let param: string | null = null;
  let code: string | null = null;
  if (Array.isArray(details)) {
    param = details[0]?.field ?? null;
  } else if (details && typeof details === 'object') {
    if (typeof details.param === 'string') param = details.param;
    if (typeof details.code === 'string') code = details.code;
  }
  if (code === null) {
    if (body.statusCode === 404) code = 'not_found';
    else if (body.statusCode === 429) code = 'rate_limit_exceeded';
    else if (body.statusCode === 413) code = 'request_too_large';
  }
  const type = TYPE_BY_STATUS[body.statusCode] ?? (body.statusCode >= 500 ? 'server_error' : 'invalid_request_error');
  return { error: { message: body.message, type, param, code } };
}

/** Paths that answer in OpenAI's error format. */
export function isOpenAIPath(url: string | undefined): boolean {
  if (typeof url !== 'string') return false;
  const path = url.split('?')[0];
  // vLLM's tokenizer routes sit at the root and answer in OpenAI's error shape too
  return path === '/v1' || path.startsWith('/v1/') || path === '/tokenize' || path === '/detokenize';
}
