// worker-quant and worker-infer modules in-process against real Postgres and Redis/BullMQ, with a fake
// engine: the job lifecycle in the database (running, progress, retries, failures, flows, cancel, shutdown),
// artifacts and metrics, idempotent re-runs, and the startup handler check.
import { Injectable, type INestApplication, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Queue } from 'bullmq';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { createApiApp } from '../../apps/api/src/app';
import { QuantWorkerModule } from '../../apps/worker-quant/src/worker.module';
import { InferWorkerModule } from '../../apps/worker-infer/src/worker.module';
import {
  ArtifactRepository,
  createRedis,
  JobName,
  JobQueue,
  JobRunner,
  JobRepository,
  MetricRepository,
  OnJob,
  QuantJobsService,
  type JobContext,
} from '@lmfleet/platform';
import { FakeEngine } from './support/fake-engine';
import { client } from './support/http';
import { createTestEnv, waitFor, writeFakeModel, type TestEnv } from './support/test-env';

jest.setTimeout(60000);

describe('workers (real Postgres + BullMQ, fake engine)', () => {
  let env: TestEnv;
  let api: INestApplication;
  let http: ReturnType<typeof client>;
  let quant: INestApplicationContext | undefined;
  let infer: INestApplicationContext | undefined;
  const engine = new FakeEngine();
  let versionId: string;
  let dataset: string;
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

  const startQuant = () => NestFactory.createApplicationContext(QuantWorkerModule.forRoot({ config: env.config, engine }), { logger: false });
  const job = async (id: string) => (await http('GET', `/jobs/${id}`)).body;
  const until = (id: string, statuses: string[], timeoutMs = 20000) =>
    waitFor(async () => {
      const j = await job(id);
      return statuses.includes(j.status) ? j : undefined;
    }, `job ${id} to reach ${statuses.join('|')}`, timeoutMs);
  const evalJob = (extra: Record<string, unknown> = {}) =>
    http('POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: dataset, seqlen: 32, maxWindows: 4, ...extra } }).then((r) => {
      expect(r.status).toBe(201);
      return r.body.id as string;
    });

  beforeAll(async () => {
    env = await createTestEnv();
    const dir = writeFakeModel(env.modelRoot, 'tiny');
    dataset = path.join(dir, 'eval.txt');
    api = await createApiApp({ config: env.config, engine }, false);
    await api.listen(0, '127.0.0.1');
    http = client(await api.getUrl());
    versionId = (await http('POST', '/models', { path: dir })).body.version.id;
    quant = await startQuant();
    infer = await NestFactory.createApplicationContext(InferWorkerModule.forRoot({ config: env.config, engine }), { logger: false });
  });
  afterAll(async () => {
    await quant?.close();
    await infer?.close();
    await api?.close();
    redis.disconnect();
    await env?.cleanup();
  });

  beforeEach(() => {
    engine.failEvals = 0;
    engine.windowMs = 5;
  });

  it('runs an eval job: status, progress, result, ppl metric on the version, report artifact', async () => {
    const id = await evalJob();
    const done = await until(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', progress: 1, attempts: 1, error: null, result: { versionId, ppl: 12.5, windows: 4, tokens: 128 } });
    expect(done.startedAt).toBeTruthy();
    expect(done.finishedAt).toBeTruthy();
    const workers = (await http('GET', '/workers')).body;
    expect(workers.map((w: { id: string }) => w.id)).toContain(done.workerId);

    const version = (await http('GET', `/versions/${versionId}`)).body;
    expect(version.metrics.ppl).toBe(12.5);
    const metrics = await api.get(MetricRepository).listByJob(id);
    expect(metrics.map((m) => [m.name, m.value, m.versionId])).toEqual([
      ['eval_seconds', 0.02, versionId],
      ['eval_tokens', 128, versionId],
      ['ppl', 12.5, versionId],
    ]);
    const artifacts = (await http('GET', `/jobs/${id}/artifacts`)).body;
    expect(artifacts).toHaveLength(1);
    expect(artifacts[0]).toMatchObject({ kind: 'eval_report', name: 'eval.json', versionId });
    const dl = await http('GET', `/artifacts/${artifacts[0].id}/download`);
    expect(createHash('sha256').update(dl.text).digest('hex')).toBe(artifacts[0].sha256);
    expect(Buffer.byteLength(dl.text)).toBe(artifacts[0].bytes);
    expect(JSON.parse(dl.text)).toMatchObject({ ppl: 12.5, versionId });
  });

  it('re-running a finished job’s handler (crash after work, before ack) duplicates nothing', async () => {
    const id = await evalJob();
    await until(id, ['completed']);
    const row = (await api.get(JobRepository).get(id))!;
    const ctx: JobContext = { job: row, workerId: 'w', signal: new AbortController().signal, progress: () => undefined };
    await quant!.get(QuantJobsService).eval(ctx);
    await quant!.get(QuantJobsService).eval(ctx);
    expect(await api.get(ArtifactRepository).listByJob(id)).toHaveLength(1);
    expect(await api.get(MetricRepository).listByJob(id)).toHaveLength(3);
    const count = await api.get(DataSource).query(`SELECT count(*)::int AS n FROM model_versions`);
    expect(count[0].n).toBe(1);
  });

  it('retries transient failures with backoff and records the attempts', async () => {
    engine.failEvals = 1;
    const id = await evalJob();
    const done = await until(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', attempts: 2, error: null });
  });

  it('fails after the last attempt, with the error', async () => {
    engine.failEvals = 100;
    const id = await evalJob();
    const done = await until(id, ['failed']);
    expect(done).toMatchObject({ status: 'failed', attempts: 3, error: 'transient engine failure' });
    expect(done.finishedAt).toBeTruthy();
  });

  it('bad input fails at once without retrying (UnrecoverableError)', async () => {
    // A row the API would have refused, enqueued directly.
    const [row] = await api.get(JobRepository).createMany([
      { id: '11111111-2222-4333-8444-555555555555', type: JobName.Eval, params: { versionId, seqlen: 'long' }, queueName: 'quant', bullJobId: 'eval-11111111-2222-4333-8444-555555555555' },
    ]);
    await api.get(JobQueue).enqueue(row);
    const done = await until(row.id, ['failed']);
    expect(done.attempts).toBe(1);
    expect(done.error).toMatch(/params.datasetFile/);
    const bull = await new Queue('quant', { connection: redis, prefix: env.config.queuePrefix }).getJob(row.bullJobId);
    expect(bull?.attemptsMade).toBe(1);
    expect(await bull?.getState()).toBe('failed');
  });

  it('runs the quantize pipeline calibrate → auto_awq → convert → eval: versions, lineage, artifacts, metrics', async () => {
    const r = await http('POST', '/pipelines/quantize', {
      versionId,
      calibrate: { calibDataset: dataset, calibSamples: 4, calibSeqlen: 32 },
      autoAwq: { wGroupSize: 64 },
      eval: { datasetFile: dataset, seqlen: 32 },
    });
    expect(r.status).toBe(201);
    const [cal, awq, conv, ev] = r.body.jobs;
    const done = [await until(cal.id, ['completed', 'failed']), await until(awq.id, ['completed', 'failed']), await until(conv.id, ['completed', 'failed']), await until(ev.id, ['completed', 'failed'])];
    expect(done.map((j) => [j.status, j.error])).toEqual([['completed', null], ['completed', null], ['completed', null], ['completed', null]]);
    const finished = done.map((j) => Date.parse(j.finishedAt));
    expect([...finished].sort((a, b) => a - b)).toEqual(finished); // in order: each step waited for the one before

    expect(done[0].result).toMatchObject({ versionId, samples: 4, seqlen: 32, tokens: 128, artifacts: 2, seconds: expect.any(Number) });
    const awqVersion = (await http('GET', `/versions/${done[1].result.versionId}`)).body;
    expect(awqVersion).toMatchObject({ format: 'autoawq', parentVersionId: versionId, createdByJobId: awq.id, ancestors: [versionId], quantization: { bits: 4, group_size: 64 } });
    const wsVersion = (await http('GET', `/versions/${done[2].result.versionId}`)).body;
    expect(wsVersion).toMatchObject({ format: 'workspace', parentVersionId: awqVersion.id, createdByJobId: conv.id, ancestors: [awqVersion.id, versionId] });
    expect(wsVersion.sizeBytes).toBe(256 + JSON.stringify({ format: 'awq' }).length);
    // before/after on the versions the pipeline made: the base's ppl on the same settings was not known, so the eval
    // measured it (12.5; the fake gives derived models 13), sizes against the base, the steps' time
    const base = (await http('GET', `/versions/${versionId}`)).body;
    expect(done[3].result).toMatchObject({ versionId: wsVersion.id, ppl: 13, baseline: { versionId, ppl: 12.5, measured: true }, pplRatio: 13 / 12.5 });
    const quantizeSeconds = done[0].result.seconds + done[1].result.seconds + done[2].result.seconds;
    expect((await http('GET', `/versions/${wsVersion.id}`)).body.metrics).toEqual({
      ppl: 13, ppl_before: 12.5, ppl_ratio: 13 / 12.5, convert_seconds: 0.01, quantize_seconds: expect.closeTo(quantizeSeconds, 9),
      size_bytes: wsVersion.sizeBytes, size_bytes_before: base.sizeBytes, size_ratio: wsVersion.sizeBytes / base.sizeBytes,
    });
    expect(base.metrics.ppl).toBe(12.5);
    expect((await http('GET', `/versions/${awqVersion.id}`)).body.metrics).toEqual({
      auto_awq_seconds: 0.01, size_bytes: awqVersion.sizeBytes, size_bytes_before: base.sizeBytes, size_ratio: awqVersion.sizeBytes / base.sizeBytes,
    });
    const evalMetrics = (await api.get(MetricRepository).listByJob(ev.id)).map((m) => m.name);
    expect(evalMetrics).toEqual(['eval_seconds', 'eval_tokens', 'ppl', 'ppl_before', 'ppl_ratio', 'quantize_seconds', 'size_bytes', 'size_bytes_before', 'size_ratio']);
    // a later eval of the same version with the same settings reuses the base's perplexity instead of measuring it
    const calls = engine.evalCalls;
    const again = await http('POST', '/jobs', { type: 'eval', params: { versionId: wsVersion.id, datasetFile: dataset, seqlen: 32 } });
    expect((await until(again.body.id, ['completed', 'failed'])).result).toMatchObject({ ppl: 13, baseline: { versionId, ppl: 12.5, measured: false } });
    expect(engine.evalCalls).toBe(calls + 1);
    // and compareToBase: false skips the comparison
    const plain = await http('POST', '/jobs', { type: 'eval', params: { versionId: wsVersion.id, datasetFile: dataset, seqlen: 32, compareToBase: false } });
    expect((await until(plain.body.id, ['completed', 'failed'])).result.baseline).toBeUndefined();

    const names = async (id: string) => ((await http('GET', `/jobs/${id}/artifacts`)).body as Array<{ name: string; kind: string }>).map((a) => `${a.kind}:${a.name}`).sort();
    expect(await names(cal.id)).toEqual(['calibration:calib_manifest.json', 'calibration:calib_stats.safetensors']);
    expect(await names(awq.id)).toEqual(['autoawq:config.json', 'autoawq:model.safetensors']);
    expect(await names(conv.id)).toEqual(['workspace:lmfleet.json', 'workspace:weights.bin']);
    expect(await names(ev.id)).toEqual(['eval_report:eval.json']);

    // A step re-run after a crash (same job) updates its version and artifacts instead of adding new ones.
    const row = (await api.get(JobRepository).get(awq.id))!;
    await quant!.get(QuantJobsService).autoAwq({ job: row, workerId: 'w', signal: new AbortController().signal, progress: () => undefined });
    const versions = (await http('GET', `/models/${awqVersion.modelId}/versions`)).body as Array<{ id: string }>;
    expect(versions.filter((v) => v.id === awqVersion.id)).toHaveLength(1);
    expect(versions).toHaveLength(3);
    expect(await names(awq.id)).toHaveLength(2);
  });

  it('a failing step fails every later step of its flow, saying which step and why', async () => {
    engine.failConvert = true;
    try {
      const r = await http('POST', '/pipelines/quantize', { versionId, calibrate: { calibDataset: dataset }, eval: { datasetFile: dataset } });
      const [, , conv, ev] = r.body.jobs;
      expect(await until(conv.id, ['failed'])).toMatchObject({ attempts: 1, error: 'bad checkpoint' }); // bad input: no retry
      expect((await until(ev.id, ['failed'])).error).toBe(`convert step ${conv.id} failed: bad checkpoint`);
      const q = new Queue('quant', { connection: redis, prefix: env.config.queuePrefix });
      await waitFor(async () => (await (await q.getJob(ev.bullJobId))?.getState()) === 'failed', 'flow root failed in BullMQ');
    } finally {
      engine.failConvert = false;
    }
  });

  it('standalone steps: auto_awq without a calibration fails as bad input; convert makes a workspace version', async () => {
    const a = await http('POST', '/jobs', { type: 'auto_awq', params: { versionId } });
    expect(await until(a.body.id, ['failed'])).toMatchObject({ attempts: 1, result: null, error: expect.stringMatching(/auto_awq needs a calibration/) });
    const c = await http('POST', '/jobs', { type: 'convert', params: { versionId } });
    const done = await until(c.body.id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect((await http('GET', `/versions/${done.result.versionId}`)).body).toMatchObject({ format: 'workspace', parentVersionId: versionId });
  });

  it('KV-cache quantization flags (LMDeploy --quant-policy / --kv-calib-dir) as job params: validated, run, recorded', async () => {
    const bad = async (type: string, params: Record<string, unknown>, field: string, why: RegExp) => {
      const r = await http('POST', '/jobs', { type, params: { versionId, ...(type === 'eval' ? { datasetFile: dataset } : {}), ...params } });
      expect([type, params, r.status]).toEqual([type, params, 400]);
      expect(JSON.stringify(r.body)).toContain(field);
      expect(JSON.stringify(r.body)).toMatch(why);
    };
    await bad('eval', { quantPolicy: 2 }, 'params.quantPolicy', /one of the following values: 0, 4, 8/);
    await bad('eval', { kvCalibDir: path.dirname(dataset) }, 'params.quantPolicy', /need quantPolicy 4 or 8/);
    await bad('convert', { quantPolicy: 8, kvCalibDir: '/etc' }, 'params.kvCalibDir', /outside the allowed roots/);
    await bad('convert', { quantPolicy: 8, kvCalibDir: dataset }, 'params.kvCalibDir', /is not a directory/);
    const notCalib = await evalJob();
    await until(notCalib, ['completed']);
    await bad('convert', { quantPolicy: 8, kvCalibJobId: notCalib }, 'params.kvCalibJobId', /is a eval job, not calibrate/);
    await bad('convert', { quantPolicy: 8, kvCalibJobId: notCalib, kvCalibDir: path.dirname(dataset) }, 'params.kvCalibJobId', /not both/);

    // eval with an int8 KV cache: the engine gets the policy; the result, report and metrics say which cache.
    const fp16 = (await http('GET', `/versions/${versionId}`)).body.metrics.ppl;
    const e = await until(await evalJob({ quantPolicy: 8 }), ['completed', 'failed']);
    expect(e).toMatchObject({ status: 'completed', result: { quantPolicy: 8, kvCache: 'int8 online', ppl: 12.75 } });
    expect(engine.lastEval).toMatchObject({ quantPolicy: 8 });
    expect(engine.lastEval?.kvCalibDir).toBeUndefined();
    expect((await http('GET', `/versions/${versionId}`)).body.metrics).toMatchObject({ ppl: fp16, ppl_kv_int8: 12.75 });

    // convert with int4 KV and the scales of a calibrate job of the platform: the worker reads that job's calibration.
    const cal = await http('POST', '/jobs', { type: 'calibrate', params: { versionId, calibDataset: dataset } });
    const calDone = await until(cal.body.id, ['completed', 'failed']);
    expect(calDone.status).toBe('completed');
    const c = await http('POST', '/jobs', { type: 'convert', params: { versionId, quantPolicy: 4, kvCalibJobId: cal.body.id } });
    expect(c.status).toBe(201);
    const conv = await until(c.body.id, ['completed', 'failed']);
    expect(conv).toMatchObject({ status: 'completed', result: { kvCache: { quantPolicy: 4, calibrated: true, calibJobId: cal.body.id } } });
    expect(engine.lastConvert).toMatchObject({ quantPolicy: 4, kvCalibDir: path.join(env.config.artifactDir, calDone.result.calibrationDir) });
    const ws = (await http('GET', `/versions/${conv.result.versionId}`)).body;
    expect(ws).toMatchObject({ format: 'workspace', info: { kvCache: { quantPolicy: 4, calibrated: true, calibJobId: cal.body.id } } });

    // ...or a lite calibrate work dir under MODEL_ROOTS, stored as its real path.
    const dir = path.join(env.modelRoot, 'kv-calib');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'calib_stats.safetensors'), Buffer.alloc(8));
    const c2 = await http('POST', '/jobs', { type: 'convert', params: { versionId, quantPolicy: 8, kvCalibDir: dir } });
    expect(c2.body.params.kvCalibDir).toBe(fs.realpathSync(dir));
    expect(await until(c2.body.id, ['completed', 'failed'])).toMatchObject({ status: 'completed', result: { kvCache: { quantPolicy: 8, calibrated: true, calibDir: fs.realpathSync(dir) } } });
  });

  it('runs infer jobs on the deployment queue and writes generations as JSONL', async () => {
    const r = await http('POST', '/jobs', { type: 'infer', params: { versionId, prompts: ['a', 'b c'], maxNewTokens: 4 } });
    const done = await until(r.body.id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', result: { versionId, count: 2 } });
    const [a] = (await http('GET', `/jobs/${r.body.id}/artifacts`)).body;
    expect(a).toMatchObject({ kind: 'generations', name: 'generations.jsonl' });
    const lines = (await http('GET', `/artifacts/${a.id}/download`)).text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { index: 0, prompt: 'a', text: 'echo: a', finishReason: 'length' },
      { index: 1, prompt: 'b c', text: 'echo: b c', finishReason: 'length' },
    ]);
    await waitFor(async () => {
      const ws = (await http('GET', '/workers')).body as Array<{ kind: string; loadedDeployments: unknown[] }>;
      return ws.find((w) => w.kind === 'infer' && w.loadedDeployments.length === 1);
    }, 'infer worker to report its loaded deployment');
  });

  it('cancelling a running job stops it at its next progress report', async () => {
    engine.windowMs = 100;
    const id = await evalJob({ maxWindows: 200 });
    await waitFor(async () => (await job(id)).progress > 0, 'progress');
    expect((await http('POST', `/jobs/${id}/cancel`)).status).toBe(200);
    // The worker is free again soon: a new job completes.
    engine.windowMs = 5;
    const next = await evalJob();
    await until(next, ['completed'], 15000);
    const cancelled = await job(id);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.progress).toBeLessThan(1);
    expect(await api.get(ArtifactRepository).listByJob(id)).toHaveLength(0);
  });

  it('a worker that lost its job to another (blocked past its lock) stops instead of writing over it', async () => {
    engine.windowMs = 100;
    const id = await evalJob({ maxWindows: 60 });
    await waitFor(async () => (await job(id)).progress > 0, 'progress');
    // What a takeover looks like from the stale worker's side: the row now names another worker.
    const ours = (await job(id)).workerId;
    await api.get(DataSource).query(`UPDATE jobs SET worker_id = $2 WHERE id = $1`, [id, '99999999-9999-4999-8999-999999999999']);
    engine.windowMs = 5;
    // Had it gone on, it could never record its result (the row is not its own) and the job would hang in
    // `running`. It stops at its next progress report instead; here, where no real worker took the BullMQ
    // job, BullMQ retries it and the run that owns the row completes.
    const done = await until(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', attempts: 2, workerId: ours, error: null, result: { windows: 60 } });
    expect(await api.get(ArtifactRepository).listByJob(id)).toHaveLength(1);
  });

  it('graceful shutdown hands an in-flight job back; another worker finishes it', async () => {
    engine.windowMs = 200;
    const id = await evalJob({ maxWindows: 100 });
    await waitFor(async () => (await job(id)).progress > 0, 'progress');
    const firstWorker = (await job(id)).workerId;
    await quant!.close(); // SIGTERM path: waits SHUTDOWN_GRACE_MS, then returns the job to the queue
    quant = undefined;
    const back = await job(id);
    expect(back).toMatchObject({ status: 'queued', workerId: null });
    const workers = (await http('GET', '/workers')).body as Array<{ id: string; status: string }>;
    expect(workers.find((w) => w.id === firstWorker)?.status).toBe('stopped');
    engine.windowMs = 5;
    quant = await startQuant();
    const done = await until(id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.workerId).not.toBe(firstWorker);
    expect(await api.get(ArtifactRepository).listByJob(id)).toHaveLength(1);
  });

  it('a consumer that stops taking jobs (as one whose BullMQ blocking connection never came back) is replaced; the job runs', async () => {
    const runner = quant!.get(JobRunner);
    const consumers = (runner as unknown as { workers: Map<string, { pause(doNotWaitActive?: boolean): Promise<void> }> }).workers;
    const stuck = consumers.get('quant')!;
    await stuck.pause(); // takes nothing more, like a consumer parked on a dead blocking connection
    const id = await evalJob();
    const done = await until(id, ['completed', 'failed'], 40_000); // noticed after 10 s of waiting, checked every 5 s
    expect(done.status).toBe('completed');
    expect(consumers.get('quant')).not.toBe(stuck);
  }, 60_000);

  it('a worker refuses to start when a job has two handlers', async () => {
    @Injectable()
    class SecondEval {
      @OnJob(JobName.Eval)
      async eval(): Promise<Record<string, unknown>> {
        return {};
      }
    }
    const mod = QuantWorkerModule.forRoot({ config: env.config, engine });
    mod.providers = [...(mod.providers ?? []), SecondEval];
    await expect(NestFactory.createApplicationContext(mod, { logger: false, abortOnError: false })).rejects.toThrow(
      /job "eval" has 2 handlers: QuantJobsService.eval, SecondEval.eval/,
    );
  });
});
