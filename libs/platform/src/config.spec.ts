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
    expect(loadConfig({}).worker.engineThreads).toBe(0);
    expect(loadConfig({ ENGINE_THREADS: '1' }).worker.engineThreads).toBe(1);
  });

  it('reports every problem at once', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', MODEL_ROOTS: 'relative/dir', REDIS_PREFIX: 'a:b', ENGINE_BACKEND: 'tpu', ENGINE_THREADS: '-1' });
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
    expect(problems).toMatch(/ENGINE_THREADS/);
  });

  it('reads API keys from API_KEYS and API_KEYS_FILE, and the body limit', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const file = require('node:path').join(require('node:os').tmpdir(), `lmfleet-keys-${process.pid}.txt`);
    fs.writeFileSync(file, '# team keys\nsk-from-file-1\n\n  sk-from-file-2  \nsk-env-key-1\n');
    try {
      const c = loadConfig({ API_KEYS: 'sk-env-key-1, sk-env-key-2', API_KEYS_FILE: file, BODY_LIMIT_BYTES: '2048' });
      expect(c.apiKeys).toEqual(['sk-env-key-1', 'sk-env-key-2', 'sk-from-file-1', 'sk-from-file-2']);
      expect(c.bodyLimitBytes).toBe(2048);
    } finally {
      fs.rmSync(file);
    }
    expect(loadConfig({}).apiKeys).toEqual([]);
    expect(() => loadConfig({ API_KEYS: 'short' })).toThrow(/at least 8 printable/);
    expect(() => loadConfig({ API_KEYS_FILE: '/nonexistent/keys' })).toThrow(/API_KEYS_FILE: cannot read/);
    expect(() => loadConfig({ BODY_LIMIT_BYTES: '10' })).toThrow(/BODY_LIMIT_BYTES/);
  });
});
