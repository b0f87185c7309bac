import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiKeyGuard, ApiKeySet, Public, UnauthorizedError } from './api-key.guard';

describe('ApiKeySet', () => {
  const keys = new ApiKeySet(['sk-first-key', 'sk-second-key']);
  it('accepts any configured key, bearer scheme case-insensitive', () => {
    expect(keys.check('Bearer sk-first-key')).toBeUndefined();
    expect(keys.check('bearer sk-second-key')).toBeUndefined();
    expect(keys.check('Bearer   sk-second-key  ')).toBeUndefined();
  });
  it('says why it refuses', () => {
    expect(keys.check(undefined)).toMatch(/missing API key/);
    expect(keys.check('')).toMatch(/missing API key/);
    expect(keys.check('Basic dXNlcjpwYXNz')).toMatch(/malformed Authorization/);
    expect(keys.check('Bearer')).toMatch(/malformed Authorization/);
    expect(keys.check('Bearer sk-first-ke')).toBe('invalid API key');
    expect(keys.check('Bearer sk-first-key2')).toBe('invalid API key');
    expect(keys.check(['Bearer sk-first-key', 'Bearer x'])).toMatch(/one Authorization/);
  });
  it('is disabled without keys', () => {
    expect(new ApiKeySet([]).enabled).toBe(false);
    expect(keys.enabled).toBe(true);
  });
});

describe('ApiKeyGuard', () => {
  class Open {
    @Public()
    health() {}
    closed() {}
  }
  const ctx = (handler: keyof Open, authorization?: string) => {
    const headers: Record<string, string> = {};
    const context = {
      getType: () => 'http',
      getHandler: () => Open.prototype[handler],
      getClass: () => Open,
      switchToHttp: () => ({
        getRequest: () => ({ headers: authorization ? { authorization } : {} }),
        getResponse: () => ({ setHeader: (k: string, v: string) => (headers[k] = v) }),
      }),
    } as unknown as ExecutionContext;
    return { context, headers };
  };

  it('lets everything through without keys', () => {
    expect(new ApiKeyGuard([], new Reflector()).canActivate(ctx('closed').context)).toBe(true);
  });
  it('requires a key except on @Public() routes, with WWW-Authenticate on a refusal', () => {
    const guard = new ApiKeyGuard(['sk-test-key-1'], new Reflector());
    expect(guard.canActivate(ctx('health').context)).toBe(true);
    expect(guard.canActivate(ctx('closed', 'Bearer sk-test-key-1').context)).toBe(true);
    const refused = ctx('closed', 'Bearer wrong-key-123');
    expect(() => guard.canActivate(refused.context)).toThrow(UnauthorizedError);
    expect(refused.headers['WWW-Authenticate']).toBe('Bearer');
  });
});
