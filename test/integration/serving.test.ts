// The serving side of the API on real Postgres and Redis (no worker): deployments REST and its errors, /v1 errors
// in OpenAI's shape, the 429 bound shared through Redis, and the job a request becomes. The e2e suite runs the
// whole path with a worker and the real engine.
import type { INestApplication } from '@nestjs/common';
import { Queue } from 'bullmq';
import { createApiApp } from '../../apps/api/src/app';
import { Admission, createRedis, SERVE_JOB, serveKeys, WorkerRepository, type ServeRequest } from '@lmfleet/platform';
import { FakeEngine } from './support/fake-engine';
import { client } from './support/http';
import { createTestEnv, writeFakeModel, type TestEnv } from './support/test-env';

jest.setTimeout(30000);

describe('serving API (real Postgres + Redis)', () => {
  let env: TestEnv;
  let app: INestApplication;
  let http: ReturnType<typeof client>;
  let versionId: string;
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

  beforeAll(async () => {
    env = await createTestEnv();
    const dir = writeFakeModel(env.modelRoot, 'tiny');
    app = await createApiApp({ config: env.config, engine: new FakeEngine() }, false);
    await app.listen(0, '127.0.0.1');
    http = client(await app.getUrl());
    versionId = (await http('POST', '/models', { path: dir })).body.version.id;
  });
  afterAll(async () => {
    await app?.close();
    redis.disconnect();
    await env?.cleanup();
  });

  it('creates, lists, gets (by name or id) and deletes deployments, with defaults', async () => {
    const r = await http('POST', '/deployments', { name: 'tiny-a', versionId, maxBatchSize: 2 });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'tiny-a', versionId, kvPolicy: 'auto', maxBatchSize: 2, maxPending: 8, sessionLen: null, cacheMaxEntryCount: null, tp: 1, workers: [] });
    expect((await http('GET', '/deployments')).body.map((d: { name: string }) => d.name)).toEqual(['tiny-a']);
    expect((await http('GET', `/deployments/${r.body.id}`)).body.name).toBe('tiny-a');
    expect((await http('GET', '/v1/models')).body).toMatchObject({ object: 'list', data: [{ id: 'tiny-a', object: 'model', owned_by: 'lmfleet' }] });
    expect((await http('DELETE', '/deployments/tiny-a')).status).toBe(200);
    expect((await http('GET', '/deployments/tiny-a')).status).toBe(404);
    // LMDeploy's --tp is kept with the deployment (the worker shards the model over that many GPUs of its host)
    const t = await http('POST', '/deployments', { name: 'tiny-tp', versionId, tp: 2 });
    expect([t.status, t.body.tp]).toEqual([201, 2]);
    expect((await http('GET', '/deployments/tiny-tp')).body.tp).toBe(2);
    expect((await http('DELETE', '/deployments/tiny-tp')).status).toBe(200);
    // Speculative decoding (jsonb): kept as given, shown by GET and the list; off (null) by default
    expect(r.body.speculative).toBeNull();
    const speculative = { method: 'ngram', numDraftTokens: 6, promptLookupMax: 3, promptLookupMin: 2 };
    const s = await http('POST', '/deployments', { name: 'tiny-spec', versionId, speculative });
    expect([s.status, s.body.speculative]).toEqual([201, speculative]);
    expect((await http('GET', '/deployments/tiny-spec')).body.speculative).toEqual(speculative);
    expect((await http('GET', '/deployments')).body.find((d: { name: string }) => d.name === 'tiny-spec').speculative).toEqual(speculative);
    expect((await http('DELETE', '/deployments/tiny-spec')).status).toBe(200);
    const n = await http('POST', '/deployments', { name: 'tiny-spec-null', versionId, speculative: null });
    expect([n.status, n.body.speculative]).toEqual([201, null]);
    expect((await http('DELETE', '/deployments/tiny-spec-null')).status).toBe(200);
  });

  it('refuses bad deployments: field errors, unknown version, duplicate name, maxPending below the batch', async () => {
    const cases: Array<[object, number, RegExp]> = [
      [{ name: 'has space', versionId }, 400, /name must match/],
      [{ name: 'x', versionId, kvPolicy: 'int3' }, 400, /kvPolicy/],
      [{ name: 'x', versionId, cacheMaxEntryCount: 1.5 }, 400, /cacheMaxEntryCount/],
      [{ name: 'x', versionId, maxBatchSize: 0 }, 400, /maxBatchSize/],
      [{ name: 'x', versionId, tp: 0 }, 400, /tp/],
      [{ name: 'x', versionId, tp: 1.5 }, 400, /tp/],
      [{ name: 'x', versionId, maxBatchSize: 4, maxPending: 2 }, 400, /maxPending 2 must be at least maxBatchSize 4/],
      [{ name: 'x', versionId: '00000000-0000-4000-8000-000000000000' }, 404, /version .* not found/],
      [{ name: 'x', versionId, extra: 1 }, 400, /extra/],
      [{ name: 'x', versionId, speculative: { method: 'eagle', numDraftTokens: 4 } }, 400, /^speculative: speculative\.method must be "ngram"/],
      [{ name: 'x', versionId, speculative: { method: 'ngram', numDraftTokens: 16 } }, 400, /^speculative: speculative\.numDraftTokens must be an integer in \[1, 15\]/],
      [{ name: 'x', versionId, speculative: { method: 'ngram', numDraftTokens: 4, promptLookupMax: 2, promptLookupMin: 3 } }, 400, /speculative\.promptLookupMin must be an integer in \[1, 2\]/],
      [{ name: 'x', versionId, speculative: { method: 'ngram', numDraftTokens: 4, draftModel: 'x' } }, 400, /speculative: unknown field "draftModel"/],
      [{ name: 'x', versionId, speculative: 4 }, 400, /speculative must be an object/],
    ];
    for (const [body, status, msg] of cases) {
      const r = await http('POST', '/deployments', body);
      expect([r.status, r.body.message]).toEqual([status, expect.stringMatching(msg)]);
    }
    expect((await http('POST', '/deployments', { name: 'dup', versionId })).status).toBe(201);
    expect((await http('POST', '/deployments', { name: 'dup', versionId })).status).toBe(409);
  });

  it('/v1 errors are OpenAI error objects (404 model, 400 field, penalty out of range)', async () => {
    const nf = await http('POST', '/v1/chat/completions', { model: 'nope', messages: [{ role: 'user', content: 'x' }] });
    expect(nf.status).toBe(404);
    expect(nf.body).toEqual({ error: { message: 'model nope not found', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    const bad = await http('POST', '/v1/completions', { model: 'dup', prompt: 'x', n: 0 });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: 'invalid_request_error', param: 'n' });
    const pen = await http('POST', '/v1/completions', { model: 'dup', prompt: 'x', presence_penalty: 2.5 });
    expect(pen.body.error).toMatchObject({ param: 'presence_penalty', message: expect.stringMatching(/presence_penalty must not be greater than 2/) });
    const json = await http('POST', '/v1/completions', undefined, '{"model":');
    expect(json.status).toBe(400);
    expect(json.body.error.type).toBe('invalid_request_error');
  });

  it('503 while no worker reports the deployment loaded', async () => {
    const r = await http('POST', '/v1/completions', { model: 'dup', prompt: 'x' });
    expect(r.status).toBe(503);
    expect(r.body.error).toMatchObject({ type: 'service_unavailable_error', message: expect.stringMatching(/no worker-infer has deployment dup loaded/) });
  });

  it('a request becomes a generate job on infer-<name> carrying the request; its stream answers it', async () => {
    // A worker row that reports the deployment ready (the test plays the worker below).
    const dep = (await http('GET', '/deployments/dup')).body;
    const workers = app.get(WorkerRepository);
    const w = await workers.register({ name: 'fake-infer', kind: 'infer', host: 'h', pid: 1, gpu: null, gpuMemoryBytes: null, memoryBytes: 1, queues: [] });
    await workers.heartbeat(w.id, { activeJobs: 0, loadedDeployments: [{ deploymentId: dep.id, versionId, name: 'dup', state: 'ready' }] });
    const q = new Queue('infer-dup', { connection: redis, prefix: env.config.queuePrefix });
    const pending = http('POST', '/v1/completions', { model: 'dup', prompt: 'hello', max_tokens: 3, seed: 5, stop: 'x' });
    const job = await (async () => {
      for (let i = 0; i < 100; i++) {
        const jobs = await q.getJobs(['waiting']);
        if (jobs.length) return jobs[0];
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('no job');
    })();
    const req = job.data as ServeRequest;
    expect(job.name).toBe(SERVE_JOB);
    expect(job.id).toBe(req.requestId);
    expect(req).toMatchObject({ kind: 'completion', deploymentName: 'dup', prompts: ['hello'], n: 1, maxTokens: 3, stop: ['x'], sampling: { temperature: 1, seed: 5 } });
    // Play the worker: the API relays what arrives on the request's stream.
    const key = serveKeys.stream(env.config.queuePrefix, req.requestId);
    const add = (e: object) => redis.xadd(key, '*', 'e', JSON.stringify(e));
    await add({ t: 'start', promptTokens: 2, workerId: 'w' });
    // One entry may carry several events (a token without text of its own goes with the next one), in order.
    await redis.xadd(key, '*', 'e', JSON.stringify({ t: 'delta', i: 0, text: '', tokens: 1 }), 'e', JSON.stringify({ t: 'delta', i: 0, text: 'abc', tokens: 2 }));
    await add({ t: 'done', i: 0, finishReason: 'length', completionTokens: 3 });
    await add({ t: 'end', promptTokens: 2, completionTokens: 3 });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: req.requestId, object: 'text_completion', model: 'dup', choices: [{ index: 0, text: 'abc', finish_reason: 'length', logprobs: null }], usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } });

    // Deleting the deployment answers what still waits in its queue.
    const waiting = http('POST', '/v1/completions', { model: 'dup', prompt: 'again' });
    await (async () => {
      for (let i = 0; i < 100 && (await q.getJobs(['waiting'])).length === 0; i++) await new Promise((res) => setTimeout(res, 50));
    })();
    expect((await http('DELETE', '/deployments/dup')).status).toBe(200);
    const w503 = await waiting;
    expect(w503.status).toBe(503);
    expect(w503.body.error.message).toBe('deployment dup was deleted');
    expect(await q.getJobs(['waiting'])).toEqual([]);
    await q.close();
  });

  it('admit + enqueue in one round trip only far below the bound; a request refused there leaves no job behind', async () => {
    const dep = (await http('POST', '/deployments', { name: 'tight', versionId, maxBatchSize: 2, maxPending: 4 })).body;
    const workers = app.get(WorkerRepository);
    const w = await workers.register({ name: 'fake-infer-2', kind: 'infer', host: 'h', pid: 2, gpu: null, gpuMemoryBytes: null, memoryBytes: 1, queues: [] });
    await workers.heartbeat(w.id, { activeJobs: 0, loadedDeployments: [{ deploymentId: dep.id, versionId, name: 'tight', state: 'ready' }] });
    const q = new Queue('infer-tight', { connection: redis, prefix: env.config.queuePrefix });
    const key = serveKeys.admission(env.config.queuePrefix, 'tight');
    const answer = async (job: { data: ServeRequest }) => {
      const k = serveKeys.stream(env.config.queuePrefix, job.data.requestId);
      await redis.xadd(k, '*', 'e', JSON.stringify({ t: 'start', promptTokens: 1, workerId: 'w' }), 'e', JSON.stringify({ t: 'end', promptTokens: 1, completionTokens: 0 }));
    };
    const waitingJobs = async () => (await q.getJobs(['waiting'])).filter(Boolean);
    // First request: this API has seen no count yet, so it admits, then enqueues.
    const first = http('POST', '/v1/completions', { model: 'tight', prompt: 'a' });
    for (let i = 0; i < 100 && !(await waitingJobs()).length; i++) await new Promise((r) => setTimeout(r, 20));
    const [j1] = await waitingJobs();
    await answer(j1);
    await q.remove(j1.id!);
    expect((await first).status).toBe(200);
    // It saw 1 of 4 admitted: roomy. Another API process fills the bound meanwhile; the next request is enqueued beside its
    // admission, refused, and its job removed again: a 429 and nothing left in the queue.
    const other = new Admission(redis);
    for (let i = 0; i < 4; i++) expect(await other.acquire(key, `other-${i}`, 4)).toBe(true);
    const addSpy = jest.spyOn(Queue.prototype, 'add');
    const refused = await http('POST', '/v1/completions', { model: 'tight', prompt: 'b' });
    expect(refused.status).toBe(429);
    expect(addSpy).toHaveBeenCalledTimes(1);
    expect(await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).toMatchObject({ waiting: 0, active: 0, delayed: 0, prioritized: 0 });
    // Now this API knows the bound is reached: the next refusal makes no job at all (the enqueue waits for the admission).
    expect((await http('POST', '/v1/completions', { model: 'tight', prompt: 'c' })).status).toBe(429);
    expect(addSpy).toHaveBeenCalledTimes(1);
    addSpy.mockRestore();
    for (let i = 0; i < 4; i++) await other.release(key, `other-${i}`);
    await q.close();
  });

  it('admission: concurrent acquirers never exceed the bound; released slots are reusable', async () => {
    const a = new Admission(redis);
    const key = serveKeys.admission(env.config.queuePrefix, 'bound-test');
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => a.acquire(key, `r${i}`, 7)));
    expect(got.filter(Boolean)).toHaveLength(7);
    expect(await a.count(key)).toBe(7);
    await a.release(key, `r${got.indexOf(true)}`);
    expect(await a.acquire(key, 'late', 7)).toBe(true);
    expect(await a.acquire(key, 'later', 7)).toBe(false);
    const expiring = new Admission(redis, 50);
    const k2 = serveKeys.admission(env.config.queuePrefix, 'expiry-test');
    expect(await expiring.acquire(k2, 'a', 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 80));
    expect(await expiring.acquire(k2, 'b', 1)).toBe(true); // a dead API's slot expired
  });
});
