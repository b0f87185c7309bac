import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.queuePrefix).toBe('lmfleet');
    expect(c.modelRoots).toEqual([]);
    expect(c.worker.inferDeployments).toEqual(['default']);
    expect(c.worker.heartbeatTimeoutMs).toBeGreaterThan(c.worker.heartbeatIntervalMs);
  });

  it('parses lists and numbers', () => {
    const c = loadConfig({ MODEL_ROOTS: '/a, /b/c ,', PORT: '8080', REDIS_PREFIX: 'p1', LOCK_DURATION_MS: '2000', INFER_DEPLOYMENTS: 'x,y' });
    expect(c.modelRoots).toEqual(['/a', '/b/c']);
    expect(c.port).toBe(8080);
    expect(c.queuePrefix).toBe('p1');
    expect(c.worker.lockDurationMs).toBe(2000);
    expect(c.worker.inferDeployments).toEqual(['x', 'y']);
  });

  it('reports every problem at once', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', MODEL_ROOTS: 'relative/dir', REDIS_PREFIX: 'a:b', ENGINE_BACKEND: 'tpu' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/PORT/);
    expect(problems).toMatch(/DATABASE_URL/);
    expect(problems).toMatch(/MODEL_ROOTS/);
    expect(problems).toMatch(/REDIS_PREFIX/);
    expect(problems).toMatch(/ENGINE_BACKEND/);
  });
});
