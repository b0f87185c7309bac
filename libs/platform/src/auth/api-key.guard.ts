// Optional API keys (API_KEYS / API_KEYS_FILE): when any is configured, every route requires
// `Authorization: Bearer <key>` except those marked @Public() (/health). Static files (the dashboard, /docs)
// are served outside Nest's router and stay open. A wrong or missing key is a 401: OpenAI's error object on
// /v1 and the platform's error shape elsewhere (the exception filter picks by path).
import { createHash, timingSafeEqual } from 'node:crypto';
import { SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { PlatformError } from '../errors';

/** A missing, malformed or wrong API key: 401 (OpenAI's `invalid_api_key` on /v1). */
export class UnauthorizedError extends PlatformError {
  readonly status = 401;
  constructor(message: string) {
    super(message, { code: 'invalid_api_key' });
  }
}

export const PUBLIC_ROUTE = 'lmfleet:public-route';

/** Marks a controller or handler as reachable without an API key. */
export const Public = (): ClassDecorator & MethodDecorator => SetMetadata(PUBLIC_ROUTE, true);

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares a presented key against the configured ones in constant time per key (pure, for tests). */
export class ApiKeySet {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** Why the header is refused, or undefined when it carries a valid key. */
  check(authorization: string | string[] | undefined): string | undefined {
    if (Array.isArray(authorization)) return 'send one Authorization header';
    if (!authorization) return 'missing API key: send "Authorization: Bearer <key>"';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return 'malformed Authorization header: expected "Bearer <key>"';
    const d = digest(m[1]);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(k, d) || ok; // no early exit
    return ok ? undefined : 'invalid API key';
  }
}

export class ApiKeyGuard implements CanActivate {
  private readonly keys: ApiKeySet;

  constructor(
    keys: readonly string[],
    private readonly reflector: Reflector,
  ) {
    this.keys = new ApiKeySet(keys);
  }

  canActivate(ctx: ExecutionContext): boolean {
    if (!this.keys.enabled || ctx.getType() !== 'http') return true;
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [ctx.getHandler(), ctx.getClass()])) return true;
    const http = ctx.switchToHttp();
    const req = http.getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    const why = this.keys.check(req.headers.authorization);
    if (!why) return true;
    http.getResponse<{ setHeader(name: string, value: string): void }>().setHeader('WWW-Authenticate', 'Bearer');
    throw new UnauthorizedError(why);
  }
}
