// The API on real Postgres and Redis (no workers): registration, lineage, jobs, flows, cancel, artifacts,
// workers, and the error contract. The engine is faked (inspectModel); e2e runs the real one.
import type { INestApplication } from '@nestjs/common';
import { Queue } from 'bullmq';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { createApiApp } from '../../apps/api/src/app';
import { ArtifactRepository, ArtifactStore, ModelRepository, WorkerRepository, bullJobId, createRedis, JobName } from '@lmfleet/platform';
import { FakeEngine } from './support/fake-engine';
import { client } from './support/http';
import { createTestEnv, writeFakeModel, type TestEnv } from './support/test-env';

jest.setTimeout(30000);

describe('API (real Postgres + Redis)', () => {
  let env: TestEnv;
  let app: INestApplication;
  let http: ReturnType<typeof client>;
  let modelDir: string;
  let versionId: string;
  let modelId: string;
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

  beforeAll(async () => {
    env = await createTestEnv();
    modelDir = writeFakeModel(env.modelRoot, 'tiny');
    app = await createApiApp({ config: env.config, engine: new FakeEngine() }, false);
    await app.listen(0, '127.0.0.1');
    http = client(await app.getUrl());
  });
  afterAll(async () => {
    await app?.close();
    redis.disconnect();
    await env?.cleanup();
  });

  const queue = (name: string) => new Queue(name, { connection: redis, prefix: env.config.queuePrefix });

  describe('models', () => {
    it('registers a model under MODEL_ROOTS with its base version', async () => {
      const r = await http('POST', '/models', { path: modelDir, name: 'tiny' });
      expect(r.status).toBe(201);
      expect(r.body.model).toMatchObject({ name: 'tiny', architecture: 'Qwen2ForCausalLM', modelType: 'qwen2', numParams: 1234, sourcePath: fs.realpathSync(modelDir) });
      expect(r.body.version).toMatchObject({ format: 'hf', dtype: 'bf16', parentVersionId: null, sizeBytes: 5678 });
      modelId = r.body.model.id;
      versionId = r.body.version.id;
    });

    it('refuses the same directory twice (409), even through another spelling', async () => {
      expect((await http('POST', '/models', { path: modelDir })).status).toBe(409);
      expect((await http('POST', '/models', { path: modelDir + '/' })).status).toBe(409);
    });

    it('refuses paths outside the roots, with "..", symlink escapes and non-models (400 saying why)', async () => {
      const outside = fs.mkdtempSync(path.join(path.dirname(env.modelRoot), 'outside-'));
      fs.writeFileSync(path.join(outside, 'config.json'), '{}');
      fs.symlinkSync(outside, path.join(env.modelRoot, 'sneaky'));
      fs.mkdirSync(path.join(env.modelRoot, 'empty'));
      const cases: Array<[string, RegExp]> = [
        ['/etc', /outside the allowed roots/],
        [`${env.modelRoot}/../x`, /".."/],
        [path.join(env.modelRoot, 'sneaky'), /symlink/],
        [path.join(env.modelRoot, 'nope'), /does not exist/],
        [path.join(env.modelRoot, 'empty'), /config.json is missing/],
        ['relative/path', /absolute/],
      ];
      for (const [p, why] of cases) {
        const r = await http('POST', '/models', { path: p });
        expect({ p, status: r.status }).toEqual({ p, status: 400 });
        expect(r.body.message).toMatch(why);
        expect(r.body.error).toBe('Bad Request');
      }
    });

    it('lists and reads models and versions, with lineage', async () => {
      const list = await http('GET', '/models?limit=10');
      expect(list.status).toBe(200);
      expect(list.body).toMatchObject({ total: 1, limit: 10, offset: 0 });
      expect((await http('GET', `/models/${modelId}`)).body.id).toBe(modelId);
      // A derived version made by a job (as auto_awq will) shows up with its parent chain.
      const ds = app.get(DataSource);
      const [job] = await ds.query(`INSERT INTO jobs (type, queue_name, bull_job_id) VALUES ('auto_awq', 'quant', 'x1') RETURNING id`);
      const child = await app.get(ModelRepository).upsertVersionForJob(job.id, modelId, {
        parentVersionId: versionId, createdByJobId: job.id, format: 'autoawq', dtype: 'f16', quantization: { bits: 4 }, path: '/x', sizeBytes: 1, info: {},
      });
      // Re-running the same job updates its version instead of adding one.
      const again = await app.get(ModelRepository).upsertVersionForJob(job.id, modelId, {
        parentVersionId: versionId, createdByJobId: job.id, format: 'autoawq', dtype: 'f16', quantization: { bits: 4 }, path: '/y', sizeBytes: 2, info: {},
      });
      expect(again.id).toBe(child.id);
      const versions = await http('GET', `/models/${modelId}/versions`);
      expect(versions.body).toHaveLength(2);
      expect(versions.body[0]).toMatchObject({ id: versionId, ancestors: [], childIds: [child.id] });
      expect(versions.body[1]).toMatchObject({ id: child.id, parentVersionId: versionId, ancestors: [versionId], path: '/y' });
      expect((await http('GET', `/versions/${child.id}`)).body).toMatchObject({ id: child.id, ancestors: [versionId] });
    });
  });

  describe('jobs', () => {
    let evalJobId: string;
    it('creates an eval job: a row and a BullMQ job with the deterministic id', async () => {
      const r = await http('POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: path.join(modelDir, 'eval.txt'), seqlen: 64, maxWindows: 2 } });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ type: 'eval', status: 'queued', progress: 0, queueName: 'quant', versionId });
      evalJobId = r.body.id;
      expect(r.body.bullJobId).toBe(bullJobId(JobName.Eval, evalJobId));
      const bull = await queue('quant').getJob(r.body.bullJobId);
      expect(bull?.data).toEqual({ jobId: evalJobId });
      expect(await bull?.getState()).toBe('waiting');
    });

    it('routes infer jobs to the deployment queue', async () => {
      const r = await http('POST', '/jobs', { type: 'infer', params: { versionId, prompts: ['hello'], deploymentId: 'd1' } });
      expect(r.status).toBe(201);
      expect(r.body.queueName).toBe('infer-d1');
      expect(await (await queue('infer-d1').getJob(r.body.bullJobId))?.getState()).toBe('waiting');
    });

    it('validates typed params, naming the field', async () => {
      const bad: Array<[unknown, RegExp]> = [
        [{ type: 'eval', params: { versionId, seqlen: 64 } }, /params.datasetFile/],
        [{ type: 'eval', params: { versionId, datasetFile: '/etc/passwd' } }, /params.datasetFile: path is outside/],
        [{ type: 'infer', params: { versionId, prompts: 'hi' } }, /params.prompts/],
        [{ type: 'eval', params: { datasetFile: path.join(modelDir, 'eval.txt') } }, /params.versionId/],
        [{ type: 'bogus', params: {} }, /^type:/],
        [{ type: 'eval', params: { versionId, datasetFile: path.join(modelDir, 'eval.txt'), extra: 1 } }, /params.extra/],
      ];
      for (const [body, why] of bad) {
        const r = await http('POST', '/jobs', body);
        expect(r.status).toBe(400);
        expect(r.body.message).toMatch(why);
      }
      const missing = await http('POST', '/jobs', { type: 'eval', params: { versionId: '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b', datasetFile: path.join(modelDir, 'eval.txt') } });
      expect(missing.status).toBe(404);
    });

    it('lists jobs with filters', async () => {
      expect((await http('GET', '/jobs?type=eval')).body).toMatchObject({ total: 1 });
      expect((await http('GET', '/jobs?status=queued')).body.total).toBe(3); // + the auto_awq row inserted above
      expect((await http('GET', `/jobs?versionId=${versionId}&type=infer`)).body.total).toBe(1);
      expect((await http('GET', '/jobs?status=completed')).body.total).toBe(0);
      expect((await http('GET', `/jobs/${evalJobId}`)).body.id).toBe(evalJobId);
    });

    it('cancels a queued job (removed from Redis); cancelling again is a conflict', async () => {
      const r = await http('POST', `/jobs/${evalJobId}/cancel`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: 'cancelled', error: 'cancelled by request' });
      expect(await queue('quant').getJob(bullJobId(JobName.Eval, evalJobId))).toBeUndefined();
      const again = await http('POST', `/jobs/${evalJobId}/cancel`);
      expect(again.status).toBe(409);
      expect(again.body.message).toMatch(/already cancelled/);
    });

    it('creates the quantize pipeline as one flow: eval root, calibrate deepest child', async () => {
      const r = await http('POST', '/pipelines/quantize', {
        versionId,
        calibrate: { calibDataset: path.join(modelDir, 'eval.txt'), calibSamples: 4 },
        autoAwq: { wBits: 4, wGroupSize: 128 },
        eval: { datasetFile: path.join(modelDir, 'eval.txt'), seqlen: 64 },
      });
      expect(r.status).toBe(201);
      const [cal, awq, conv, ev] = r.body.jobs;
      expect([cal.type, awq.type, conv.type, ev.type]).toEqual(['calibrate', 'auto_awq', 'convert', 'eval']);
      expect([cal.parentJobId, awq.parentJobId, conv.parentJobId, ev.parentJobId]).toEqual([awq.id, conv.id, ev.id, null]);
      expect(new Set(r.body.jobs.map((j: { flowId: string }) => j.flowId))).toEqual(new Set([r.body.flowId]));
      const q = queue('quant');
      expect(await (await q.getJob(ev.bullJobId))!.getState()).toBe('waiting-children');
      expect(await (await q.getJob(cal.bullJobId))!.getState()).toBe('waiting');
      expect((await http('GET', `/jobs?flowId=${r.body.flowId}`)).body.total).toBe(4);
      // Cancelling one step cancels the flow and removes it from Redis.
      expect((await http('POST', `/jobs/${conv.id}/cancel`)).status).toBe(200);
      const flow = (await http('GET', `/jobs?flowId=${r.body.flowId}`)).body.items;
      expect(flow.map((j: { status: string }) => j.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
      expect(await q.getJob(ev.bullJobId)).toBeUndefined();
      expect(await q.getJob(cal.bullJobId)).toBeUndefined();
    });

    it('re-enqueues unfinished jobs from Postgres after Redis lost them, without duplicates', async () => {
      const r = await http('POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: path.join(modelDir, 'eval.txt') } });
      const q = queue('quant');
      // Still in Redis: left alone. (The auto_awq row inserted above never was: it is enqueued now.)
      expect((await http('POST', '/jobs/requeue')).body.reenqueued).not.toContain(r.body.id);
      await (await q.getJob(r.body.bullJobId))!.remove(); // Redis "loses" it
      const res = await http('POST', '/jobs/requeue');
      expect(res.status).toBe(200);
      expect(res.body.reenqueued).toEqual([r.body.id]);
      expect(await (await q.getJob(r.body.bullJobId))!.getState()).toBe('waiting');
      expect((await http('POST', '/jobs/requeue')).body.reenqueued).toEqual([]);
      const waiting = await q.getJobs(['waiting']);
      expect(waiting.filter((j) => j.id === r.body.bullJobId)).toHaveLength(1);
    });

    it('validates pipeline params per step', async () => {
      const calibrate = { calibDataset: path.join(modelDir, 'eval.txt') };
      const r = await http('POST', '/pipelines/quantize', { versionId, calibrate, autoAwq: { wBits: 3 }, eval: {} });
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(/autoAwq.wBits/);
      expect((await http('POST', '/pipelines/quantize', { versionId, calibrate, eval: {} })).body.message).toMatch(/eval.datasetFile/);
      expect((await http('POST', '/pipelines/quantize', { versionId, calibrate: {}, eval: {} })).body.message).toMatch(/calibrate.calibDataset/);
      expect((await http('POST', '/pipelines/quantize', { versionId, eval: {} })).body.message).toMatch(/^calibrate:/);
    });

    it('a built-in calibration set is kept by name; another bare name is refused, listing the built-in ones', async () => {
      const r = await http('POST', '/jobs', { type: 'calibrate', params: { versionId, calibDataset: 'cmake-docs', calibSamples: 4 } });
      expect(r.status).toBe(201);
      expect(r.body.params.calibDataset).toBe('cmake-docs');
      expect((await http('POST', `/jobs/${r.body.id}/cancel`)).status).toBe(200);
      const bad = await http('POST', '/jobs', { type: 'calibrate', params: { versionId, calibDataset: 'wikitext2' } });
      expect(bad.status).toBe(400);
      expect(bad.body.message).toMatch(/params\.calibDataset: unknown built-in calibration dataset "wikitext2" \(built-in: cmake-docs\)/);
    });
  });

  describe('artifacts', () => {
    it('lists a job’s artifacts and streams the file', async () => {
      const ds = app.get(DataSource);
      const [job] = await ds.query(`INSERT INTO jobs (type, queue_name, bull_job_id) VALUES ('infer', 'infer-default', 'x2') RETURNING id`);
      const stored = await app.get(ArtifactStore).write(`jobs/${job.id}/generations.jsonl`, '{"index":0}\n');
      const a = await app.get(ArtifactRepository).upsert({ jobId: job.id, versionId, kind: 'generations', name: 'generations.jsonl', ...stored, metadata: {} });
      const list = await http('GET', `/jobs/${job.id}/artifacts`);
      expect(list.body).toHaveLength(1);
      expect(list.body[0]).toMatchObject({ id: a.id, bytes: 12, sha256: stored.sha256 });
      const dl = await http('GET', `/artifacts/${a.id}/download`);
      expect(dl.status).toBe(200);
      expect(dl.text).toBe('{"index":0}\n');
      expect(dl.headers.get('content-disposition')).toBe('attachment; filename="generations.jsonl"');
      expect(dl.headers.get('content-length')).toBe('12');
      fs.rmSync(path.join(env.config.artifactDir, stored.path));
      expect((await http('GET', `/artifacts/${a.id}/download`)).status).toBe(404);
    });
  });

  describe('workers and health', () => {
    it('lists workers and marks the silent ones gone', async () => {
      const repo = app.get(WorkerRepository);
      const w = await repo.register({ name: 'w1', kind: 'quant', host: 'h', pid: 1, gpu: null, gpuMemoryBytes: null, memoryBytes: 1, queues: ['quant'] });
      expect((await http('GET', '/workers')).body[0]).toMatchObject({ id: w.id, status: 'online' });
      await app.get(DataSource).query(`UPDATE workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [w.id]);
      expect((await http('GET', '/workers')).body[0]).toMatchObject({ id: w.id, status: 'gone' });
      expect((await http('GET', '/workers?status=online')).body).toEqual([]);
    });

    it('reports health', async () => {
      expect((await http('GET', '/health')).body).toEqual({ status: 'ok', postgres: true, redis: true });
    });

    it('serves OpenAPI docs', async () => {
      const r = await http('GET', '/docs-json');
      expect(r.status).toBe(200);
      expect(Object.keys(r.body.paths)).toEqual(expect.arrayContaining(['/models', '/jobs', '/pipelines/quantize', '/jobs/{id}/cancel', '/artifacts/{id}/download', '/workers', '/health']));
    });
  });

  describe('error contract: malformed requests get 4xx, never 500', () => {
    const ids = ['abc', '1', '%00', "1' OR '1'='1", '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'x'.repeat(500)];
    it.each(['/models/', '/versions/', '/jobs/', '/artifacts/'])('unknown or malformed ids on %s', async (prefix) => {
      for (const id of ids) {
        const suffix = prefix === '/artifacts/' ? '/download' : '';
        const r = await http('GET', `${prefix}${encodeURIComponent(id)}${suffix}`);
        expect({ id, status: r.status }).toEqual({ id, status: expect.any(Number) });
        expect([400, 404]).toContain(r.status);
        expect(r.body).toMatchObject({ statusCode: r.status, error: expect.any(String), message: expect.any(String) });
      }
    });

    it('fuzzed bodies', async () => {
      const bodies: Array<[string, string, string | undefined, unknown]> = [
        ['POST', '/models', '{bad json', undefined],
        ['POST', '/models', 'null', undefined],
        ['POST', '/models', '[]', undefined],
        ['POST', '/models', '"str"', undefined],
        ['POST', '/models', undefined, { path: ['a'] }],
        ['POST', '/models', undefined, { path: { $gt: '' } }],
        ['POST', '/jobs', undefined, { type: 'eval', params: null }],
        ['POST', '/jobs', undefined, { type: ['eval'], params: {} }],
        ['POST', '/jobs', undefined, { type: 'infer', params: { versionId, prompts: [null] } }],
        ['POST', '/jobs', undefined, { type: 'infer', params: { versionId, prompts: ['x'], maxNewTokens: 1e9 } }],
        ['POST', '/jobs', undefined, { type: 'eval', params: { versionId, datasetFile: '\u0000' } }],
        ['POST', '/jobs', undefined, { type: 'eval', params: { __proto__: { a: 1 }, constructor: 1 } }],
        ['POST', '/pipelines/quantize', undefined, { versionId: 12 }],
        ['POST', '/pipelines/quantize', undefined, { versionId, eval: [] }],
        ['POST', '/jobs/abc/cancel', undefined, {}],
        ['GET', '/jobs?limit=-1', undefined, undefined],
        ['GET', '/jobs?limit=1e99', undefined, undefined],
        ['GET', '/jobs?status[]=x', undefined, undefined],
        ['GET', '/models?offset=abc', undefined, undefined],
        ['GET', '/workers?status=1', undefined, undefined],
      ];
      for (const [method, url, raw, body] of bodies) {
        const r = await http(method, url, body, raw);
        expect({ url, raw, body, status: r.status >= 400 && r.status < 500 }).toEqual({ url, raw, body, status: true });
        expect(r.body.statusCode).toBe(r.status);
      }
    });

    it('unknown routes are 404 in the same shape', async () => {
      const r = await http('GET', '/nope');
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ statusCode: 404, error: 'Not Found' });
    });
  });
});
