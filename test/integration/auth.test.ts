// API keys and request-body limits on the real API (Postgres + Redis): with API_KEYS set, every route but
// /health needs `Authorization: Bearer <key>` (401 with the reason otherwise); bodies over BODY_LIMIT_BYTES are
// a 413 saying the limit, malformed JSON a 400, and neither writes anything.
import type { INestApplication } from '@nestjs/common';
import OpenAI from 'openai';
import { createApiApp } from '../../apps/api/src/app';
import { FakeEngine } from './support/fake-engine';
import { createTestEnv, writeFakeModel, type TestEnv } from './support/test-env';

jest.setTimeout(30000);

describe('API keys and body limits', () => {
  let env: TestEnv;
  let app: INestApplication;
  let base: string;
  const KEY = 'sk-lmfleet-test-key-1';
  const OTHER = 'sk-lmfleet-test-key-2';

  const call = async (method: string, path: string, opts: { key?: string; auth?: string; body?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    if (opts.auth !== undefined) headers.authorization = opts.auth;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: opts.body });
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, headers: res.headers };
  };

  beforeAll(async () => {
    env = await createTestEnv({ API_KEYS: `${KEY},${OTHER}`, BODY_LIMIT_BYTES: '4096' });
    app = await createApiApp({ config: env.config, engine: new FakeEngine() }, false);
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });
  afterAll(async () => {
    await app?.close();
    await env?.cleanup();
  });

  it('/health needs no key', async () => {
    const r = await call('GET', '/health');
    expect(r.status).toBe(200);
  });

  it('refuses a missing, malformed or wrong key with 401 and the reason, in the platform error shape', async () => {
    const cases: Array<[{ key?: string; auth?: string }, RegExp]> = [
      [{}, /missing API key/],
      [{ auth: `Basic ${Buffer.from('u:p').toString('base64')}` }, /malformed Authorization/],
      [{ auth: KEY }, /malformed Authorization/],
      [{ key: 'sk-lmfleet-test-key-3' }, /^invalid API key$/],
    ];
    for (const path of ['/models', '/jobs', '/workers', '/jobs/00000000-0000-0000-0000-000000000000']) {
      for (const [opts, why] of cases) {
        const r = await call('GET', path, opts);
        expect({ path, opts, status: r.status }).toEqual({ path, opts, status: 401 });
        expect(r.body).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
        expect(r.body.message).toMatch(why);
        expect(r.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
  });

  it('on /v1 the 401 is OpenAI\'s error object (invalid_api_key)', async () => {
    for (const [method, path] of [['GET', '/v1/models'], ['POST', '/v1/chat/completions'], ['POST', '/v1/completions']]) {
      const r = await call(method, path, { key: 'sk-lmfleet-test-key-3', body: method === 'POST' ? '{"model":"m","prompt":"x"}' : undefined });
      expect({ path, status: r.status }).toEqual({ path, status: 401 });
      expect(r.body).toEqual({ error: { message: 'invalid API key', type: 'authentication_error', param: null, code: 'invalid_api_key' } });
    }
    const ok = await call('GET', '/v1/models', { key: KEY });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ object: 'list', data: [] });
  });

  it('the official openai client raises AuthenticationError on a wrong key and works with a right one', async () => {
    const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-lmfleet-wrong-1', maxRetries: 0 });
    const err = await wrong.models.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    const right = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
    expect((await right.models.list()).data).toEqual([]);
  });

  it('on /v1 an oversized or malformed body is OpenAI\'s error object too', async () => {
    const big = await call('POST', '/v1/chat/completions', { key: KEY, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(5000) }] }) });
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    expect(big.body.error.message).toMatch(/larger than the limit of 4096 bytes/);
    const bad = await call('POST', '/v1/completions', { key: KEY, body: '{"model": ' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: 'invalid_request_error' });
    expect(bad.body.error.message).toMatch(/request body is not valid JSON/);
  });

  it('accepts every configured key', async () => {
    expect((await call('GET', '/models', { key: KEY })).status).toBe(200);
    expect((await call('GET', '/workers', { key: OTHER })).status).toBe(200);
  });

  it('a refused POST writes nothing', async () => {
    const dir = writeFakeModel(env.modelRoot, 'tiny');
    const r = await call('POST', '/models', { key: 'sk-wrong-key-123', body: JSON.stringify({ path: dir }) });
    expect(r.status).toBe(401);
    expect((await call('GET', '/models', { key: KEY })).body.total).toBe(0);
  });

  it('a body over BODY_LIMIT_BYTES is a 413 naming the limit; nothing is written', async () => {
    const dir = writeFakeModel(env.modelRoot, 'big');
    const body = JSON.stringify({ path: dir, name: 'big', pad: 'x'.repeat(5000) });
    const r = await call('POST', '/models', { key: KEY, body });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ statusCode: 413, error: 'Payload Too Large' });
    expect(r.body.message).toMatch(/larger than the limit of 4096 bytes/);
    expect((await call('GET', '/models', { key: KEY })).body.total).toBe(0);
  });

  it('malformed JSON is a 400 saying so', async () => {
    const r = await call('POST', '/models', { key: KEY, body: '{"path": "/x",' });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    expect(r.body.message).toMatch(/request body is not valid JSON/);
  });

  it('a body under the limit goes through', async () => {
    const dir = writeFakeModel(env.modelRoot, 'ok');
    const r = await call('POST', '/models', { key: KEY, body: JSON.stringify({ path: dir, name: 'ok' }) });
    expect(r.status).toBe(201);
  });
});
