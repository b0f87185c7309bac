// GET /metrics on the real API with a worker-infer in the same process (real Postgres, Redis and the CPU engine
// on a tiny random model): HTTP requests by route template and status, tokens in/out equal to the responses'
// usage, time to first token and inter-token latency histograms, queue depth / in-flight per deployment, and the
// batch and KV-cache gauges that the worker reports in its heartbeat; speculative decoding's draft counters.
import type { INestApplication, INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { createApiApp } from '../../apps/api/src/app';
import { InferWorkerModule } from '../../apps/worker-infer/src/worker.module';
import { client } from './support/http';
import { createTestEnv, waitFor, type TestEnv } from './support/test-env';

jest.setTimeout(90_000);

/** Parses the Prometheus text format into `name{labels}` -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of the samples of `name` whose labels include every `want` pair. */
function sum(m: Map<string, number>, name: string, want: Record<string, string> = {}): number {
  let total = 0;
  for (const [k, v] of m) {
    const brace = k.indexOf('{');
    const n = brace < 0 ? k : k.slice(0, brace);
    if (n !== name) continue;
    const labels = brace < 0 ? '' : k.slice(brace);
    if (Object.entries(want).every(([lk, lv]) => labels.includes(`${lk}="${lv}"`))) total += v;
  }
  return total;
}

describe('/metrics (API + worker-infer in process, CPU engine, tiny model)', () => {
  let env: TestEnv;
  let api: INestApplication;
  let worker: INestApplicationContext;
  let http: ReturnType<typeof client>;
  let base: string;
  const model = 'tiny-metrics';

  const scrape = async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseMetrics(await res.text());
  };

  beforeAll(async () => {
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', SERVE_DEPLOYMENT_POLL_MS: '200', HEARTBEAT_INTERVAL_MS: '300', BODY_LIMIT_BYTES: '2048' });
    const dir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(dir, { arch: 'qwen2', seed: 5, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    api = await createApiApp({ config: env.config }, false);
    await api.listen(0, '127.0.0.1');
    base = await api.getUrl();
    http = client(base);
    worker = await NestFactory.createApplicationContext(InferWorkerModule.forRoot({ config: env.config }), { logger: false });
    const reg = await http('POST', '/models', { path: dir });
    expect(reg.status).toBe(201);
    const dep = await http('POST', '/deployments', { name: model, versionId: reg.body.version.id, maxBatchSize: 4, sessionLen: 128, maxPending: 8 });
    expect(dep.status).toBe(201);
    await waitFor(async () => ((await http('GET', `/deployments/${model}`)).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'deployment ready', 60_000, 200);
  });
  afterAll(async () => {
    await worker?.close();
    await api?.close();
    await env?.cleanup();
  });

  it('counts HTTP requests by route template and status, never by raw path', async () => {
    await http('GET', '/models');
    await http('GET', '/jobs/00000000-0000-0000-0000-000000000000');
    await http('GET', '/no/such/route/abc123');
    await http('POST', '/v1/completions', undefined, JSON.stringify({ model, prompt: 'x'.repeat(3000) }));
    const m = await scrape();
    expect(sum(m, 'lmfleet_http_requests_total', { method: 'GET', route: '/models', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sum(m, 'lmfleet_http_requests_total', { method: 'GET', route: '/jobs/:id', status: '404' })).toBe(1);
    expect(sum(m, 'lmfleet_http_requests_total', { route: '(unmatched)', status: '404' })).toBe(1);
    expect(sum(m, 'lmfleet_http_requests_total', { method: 'POST', route: '(before routing)', status: '413' })).toBe(1);
    expect([...m.keys()].some((k) => k.includes('abc123') || k.includes('00000000-'))).toBe(false);
    expect(sum(m, 'lmfleet_http_request_duration_seconds_count', { method: 'GET', route: '/models' })).toBeGreaterThanOrEqual(1);
  });

  it('tokens in/out equal the usage the responses reported; TTFT once per request; ITL per later token', async () => {
    const before = await scrape();
    const usage = { prompt: 0, completion: 0 };
    const streamed: number[] = [];
    // Three streaming chats (usage in the last chunk) and one plain completion, concurrently.
    const chats = [1, 2, 3].map(async (k) => {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: `hello ${k}` }], max_tokens: 6 + k, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
      });
      expect(res.status).toBe(200);
      const text = await res.text();
      const chunks = text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
      const u = chunks.find((c) => c.usage)?.usage;
      expect(u).toBeDefined();
      usage.prompt += u.prompt_tokens;
      usage.completion += u.completion_tokens;
      streamed.push(u.completion_tokens);
    });
    const plain = http('POST', '/v1/completions', { model, prompt: 'the quick brown fox', max_tokens: 5, temperature: 0 }).then((r) => {
      expect(r.status).toBe(200);
      usage.prompt += r.body.usage.prompt_tokens;
      usage.completion += r.body.usage.completion_tokens;
      streamed.push(r.body.usage.completion_tokens);
    });
    await Promise.all([...chats, plain]);
    const after = await scrape();
    const d = (name: string, labels: Record<string, string> = {}) => sum(after, name, labels) - sum(before, name, labels);
    expect(d('lmfleet_prompt_tokens_total', { deployment: model })).toBe(usage.prompt);
    expect(d('lmfleet_completion_tokens_total', { deployment: model })).toBe(usage.completion);
    expect(d('lmfleet_time_to_first_token_seconds_count', { deployment: model })).toBe(4);
    const itl = d('lmfleet_inter_token_latency_seconds_count', { deployment: model });
    expect(itl).toBeGreaterThan(0);
    expect(itl).toBeLessThanOrEqual(usage.completion - 4); // the first token of each request is TTFT, not ITL
    expect(d('lmfleet_serving_requests_total', { deployment: model, outcome: 'ok', status: '200' })).toBe(4);
    expect(d('lmfleet_http_requests_total', { method: 'POST', route: '/v1/chat/completions', status: '200' })).toBe(3);
    expect(d('lmfleet_request_duration_seconds_count', { deployment: model })).toBe(4);
  });

  it('exports queue depth, in-flight count and bound per deployment, and the worker\'s batch and KV-cache gauges', async () => {
    const m = await waitFor(async () => {
      const s = await scrape();
      return sum(s, 'lmfleet_kv_cache_blocks_total', { deployment: model }) > 0 ? s : undefined;
    }, 'worker gauges', 10_000, 200);
    for (const state of ['waiting', 'active', 'delayed', 'prioritized']) expect(m.has(`lmfleet_queue_depth{deployment="${model}",state="${state}"}`)).toBe(true);
    expect(sum(m, 'lmfleet_requests_in_flight', { deployment: model })).toBe(0);
    expect(sum(m, 'lmfleet_requests_in_flight_limit', { deployment: model })).toBe(8);
    expect(sum(m, 'lmfleet_batch_max_size', { deployment: model })).toBe(4);
    const occupancy = sum(m, 'lmfleet_batch_occupancy_ratio', { deployment: model });
    const kv = sum(m, 'lmfleet_kv_cache_usage_ratio', { deployment: model });
    expect(occupancy).toBeGreaterThanOrEqual(0);
    expect(occupancy).toBeLessThanOrEqual(1);
    expect(kv).toBeGreaterThanOrEqual(0);
    expect(kv).toBeLessThanOrEqual(1);
    expect(m.has('lmfleet_api_process_resident_memory_bytes')).toBe(true);
  });

  it('speculative decoding: drafts and accepted drafts per deployment equal the requests\' rows; the worker reports its engine\'s totals; same text as plain decoding', async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    const spec = 'tiny-metrics-spec';
    expect((await http('POST', '/deployments', { name: spec, versionId, maxBatchSize: 4, sessionLen: 128, speculative: { method: 'ngram', numDraftTokens: 4 } })).status).toBe(201);
    await waitFor(async () => ((await http('GET', `/deployments/${spec}`)).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'speculative deployment ready', 60_000, 200);
    const before = await scrape();
    // A prompt that repeats itself: the n-gram lookup finds drafts. Two choices (n = 2) draft on their own.
    const body = { prompt: 'a b c d a b c d a b c d a b c d', max_tokens: 24, temperature: 0, ignore_eos: true, n: 2 };
    const [s, p] = await Promise.all([http('POST', '/v1/completions', { ...body, model: spec }), http('POST', '/v1/completions', { ...body, model })]);
    expect([s.status, p.status]).toEqual([200, 200]);
    expect(s.body.choices.map((c: { text: string }) => c.text)).toEqual(p.body.choices.map((c: { text: string }) => c.text));
    const rows = await waitFor(async () => {
      const r = (await http('GET', `/deployments/${spec}/requests?limit=10`)).body as Array<{ draftTokens: number | null; acceptedDraftTokens: number | null }>;
      return r.length === 1 ? r : undefined;
    }, 'the speculative request\'s row');
    const [row] = rows;
    expect(row.draftTokens).toBeGreaterThan(0);
    expect(row.acceptedDraftTokens).toBeGreaterThan(0);
    expect(row.acceptedDraftTokens!).toBeLessThanOrEqual(row.draftTokens!);
    const plainRow = await waitFor(async () => ((await http('GET', `/deployments/${model}/requests?limit=1`)).body as Array<{ draftTokens: number | null }>)[0], 'the plain request\'s row');
    expect(plainRow.draftTokens).toBeNull(); // a deployment that does not speculate records none
    const after = await scrape();
    const d = (name: string, labels: Record<string, string>) => sum(after, name, labels) - sum(before, name, labels);
    expect(d('lmfleet_spec_draft_tokens_total', { deployment: spec })).toBe(row.draftTokens);
    expect(d('lmfleet_spec_accepted_tokens_total', { deployment: spec })).toBe(row.acceptedDraftTokens);
    expect(d('lmfleet_spec_draft_tokens_total', { deployment: model })).toBe(0);
    // The heartbeat's engine stats: the engine's own totals (this deployment served only that request)
    const engine = await waitFor(async () => {
      const w = ((await http('GET', `/deployments/${spec}`)).body.workers as Array<{ engine?: { specDraftTokens?: number; specAcceptedTokens?: number } }>)[0];
      return w?.engine?.specDraftTokens ? w.engine : undefined;
    }, 'engine stats in the heartbeat');
    expect(engine).toMatchObject({ specDraftTokens: row.draftTokens, specAcceptedTokens: row.acceptedDraftTokens });
    const plainWorker = ((await http('GET', `/deployments/${model}`)).body.workers as Array<{ engine?: object }>)[0];
    expect(plainWorker.engine).not.toHaveProperty('specDraftTokens');
    expect((await http('DELETE', `/deployments/${spec}`)).status).toBe(200);
  });

  it('counts a 429 as rejected', async () => {
    const before = await scrape();
    // 8 in flight at most: 24 concurrent long requests, some are refused.
    const codes = await Promise.all(
      Array.from({ length: 24 }, () => http('POST', '/v1/completions', { model, prompt: 'a b c', max_tokens: 64, ignore_eos: true }).then((r) => r.status)),
    );
    const after = await scrape();
    const rejected = codes.filter((c) => c === 429).length;
    expect(codes.every((c) => c === 200 || c === 429)).toBe(true);
    expect(rejected).toBeGreaterThan(0);
    expect(sum(after, 'lmfleet_serving_requests_total', { outcome: 'rejected', status: '429' }) - sum(before, 'lmfleet_serving_requests_total', { outcome: 'rejected', status: '429' })).toBe(rejected);
    expect(sum(after, 'lmfleet_http_requests_total', { route: '/v1/completions', status: '429' }) - sum(before, 'lmfleet_http_requests_total', { route: '/v1/completions', status: '429' })).toBe(rejected);
  });
});
