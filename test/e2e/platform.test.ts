// The platform as it runs: the API and two worker-quant processes plus one worker-infer, as real child
// processes on real Postgres and Redis, with the real engine on a tiny model from libs/engine's generator.
// Jobs go in over REST; one worker is SIGKILLed mid-eval and the other finishes the job without duplicates.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { client } from '../integration/support/http';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { freePort, mappedFiles, noteFailures, startApp, stopApps, type AppProcess } from './support/processes';

jest.setTimeout(180_000);

interface Job {
  id: string;
  status: string;
  progress: number;
  attempts: number;
  workerId: string | null;
  error: string | null;
  result: Record<string, any> | null;
}
interface Worker {
  id: string;
  pid: number;
  kind: string;
  status: string;
}

describe('e2e: api + 2 worker-quant + worker-infer as processes', () => {
  let env: TestEnv;
  let logDir: string;
  let http: ReturnType<typeof client>;
  let api: AppProcess;
  const workers: AppProcess[] = [];
  let modelDir: string;
  let dataset: string;
  /** The same text three times: the SIGKILL test's eval must outlast a few progress flushes on a quiet machine. */
  let longDataset: string;
  let versionId: string;
  let secondsPerWindow = 0.05;
  const run = noteFailures();

  const job = async (id: string) => (await http('GET', `/jobs/${id}`)).body as Job;
  const until = (id: string, statuses: string[], timeoutMs = 60_000) =>
    waitFor(async () => {
      const j = await job(id);
      return statuses.includes(j.status) ? j : undefined;
    }, `job ${id} → ${statuses.join('|')}`, timeoutMs, 200);
  const listWorkers = async () => (await http('GET', '/workers')).body as Worker[];

  beforeAll(async () => {
    // The engine tokenizes the dataset and scores windows on the JS thread, which delays BullMQ's lock
    // renewal: keep the dataset small (~95k tokens) and the lock long enough that only a dead worker stalls.
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', WORKER_CONCURRENCY: '1', LOCK_DURATION_MS: '5000' });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-logs-'));
    modelDir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(modelDir, { arch: 'qwen2', seed: 7, hiddenSize: 128, numLayers: 2, intermediateSize: 256 });
    dataset = path.join(env.modelRoot, 'corpus.txt');
    const words = ['the', 'model', 'is', 'quantized', 'with', 'awq', 'and', 'served', 'on', 'a', 'fleet', 'of', 'gpus', 'in', 'batches'];
    let text = '';
    for (let i = 0; text.length < 120_000; i++) text += words[(i * 7 + (i >> 3)) % words.length] + (i % 11 === 10 ? '.\n' : ' ');
    fs.writeFileSync(dataset, text);
    longDataset = path.join(env.modelRoot, 'corpus-long.txt');
    fs.writeFileSync(longDataset, text + text + text);

    const port = await freePort();
    const base = { ...env.env, PORT: String(port) };
    api = startApp('api', 'api', base, logDir);
    http = client(`http://127.0.0.1:${port}`);
    await waitFor(async () => (await http('GET', '/health')).body?.status === 'ok', 'api health', 60_000, 250);
    workers.push(startApp('worker-quant', 'worker-quant-1', { ...base, WORKER_NAME: 'quant-1' }, logDir));
    workers.push(startApp('worker-quant', 'worker-quant-2', { ...base, WORKER_NAME: 'quant-2' }, logDir));
    workers.push(startApp('worker-infer', 'worker-infer-1', { ...base, WORKER_NAME: 'infer-1' }, logDir));
    await waitFor(async () => (await listWorkers()).filter((w) => w.status === 'online').length === 3, '3 workers online', 60_000, 250);
  });

  afterAll(async () => {
    await stopApps([api, ...workers], { failed: run.failed, logDir, tail: 4000 });
    await env?.cleanup();
  });

  it('registers the tiny model through the real inspectModel; the API never loads the native addon', async () => {
    const r = await http('POST', '/models', { path: modelDir, name: 'tiny-qwen2' });
    expect(r.status).toBe(201);
    expect(r.body.model).toMatchObject({ architecture: 'Qwen2ForCausalLM', modelType: 'qwen2' });
    expect(r.body.model.numParams).toBeGreaterThan(0);
    expect(r.body.version).toMatchObject({ format: 'hf', dtype: 'float16', parentVersionId: null });
    versionId = r.body.version.id;
    expect((await http('POST', '/models', { path: modelDir })).status).toBe(409);
    // (@swc/core's binding is there: register.js compiles the TypeScript.)
    const maps = mappedFiles(api.pid);
    if (maps.length) expect(maps.filter((f) => f.includes('lmfleet_native') || f.includes('/libs/native/'))).toEqual([]);
  });

  it('runs an eval job on a worker: ppl metric on the version and a report artifact', async () => {
    const r = await http('POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: dataset, seqlen: 128, maxWindows: 4 } });
    expect(r.status).toBe(201);
    const done = await until(r.body.id, ['completed', 'failed']);
    expect(done.error).toBeNull();
    expect(done.status).toBe('completed');
    expect(done.result!.ppl).toBeGreaterThan(1);
    expect(done.result!.windows).toBe(4);
    secondsPerWindow = Math.max(0.005, done.result!.seconds / done.result!.windows);
    const version = (await http('GET', `/versions/${versionId}`)).body;
    expect(version.metrics.ppl).toBeCloseTo(done.result!.ppl, 6);
    const [artifact] = (await http('GET', `/jobs/${r.body.id}/artifacts`)).body;
    const dl = await http('GET', `/artifacts/${artifact.id}/download`);
    expect(JSON.parse(dl.text).ppl).toBeCloseTo(done.result!.ppl, 6);
  });

  it('runs an infer job on worker-infer and writes a JSONL artifact', async () => {
    const r = await http('POST', '/jobs', { type: 'infer', params: { versionId, prompts: ['the model is', 'served on a'], maxNewTokens: 6, temperature: 0 } });
    expect(r.status).toBe(201);
    expect(r.body.queueName).toBe('infer-default');
    const done = await until(r.body.id, ['completed', 'failed']);
    expect(done.error).toBeNull();
    expect(done.result).toMatchObject({ count: 2, versionId });
    const [a] = (await http('GET', `/jobs/${r.body.id}/artifacts`)).body;
    const lines = (await http('GET', `/artifacts/${a.id}/download`)).text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.index, l.prompt])).toEqual([[0, 'the model is'], [1, 'served on a']]);
    for (const l of lines) expect(typeof l.text).toBe('string');
    const inferWorker = (await listWorkers()).find((w) => w.kind === 'infer');
    expect(inferWorker).toBeDefined();
  });

  it('a SIGKILLed worker’s job is finished by the other worker, with nothing duplicated', async () => {
    // About 10 s of work at the measured speed (at least 600 windows: the first measurement may have been
    // slowed by other suites sharing the CPU, or sped up by a quiet machine), so the kill lands mid-flight.
    // Progress reaches Postgres every 500 ms: any reported value short of 0.8 means the job is well inside its run.
    const maxWindows = Math.min(2000, Math.max(600, Math.round(10 / secondsPerWindow)));
    const r = await http('POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: longDataset, seqlen: 128, maxWindows } });
    const id = r.body.id as string;
    const running = await waitFor(async () => {
      const j = await job(id);
      return j.status === 'running' && j.progress > 0 && j.progress < 0.8 && j.workerId ? j : undefined;
    }, 'eval running with progress', 60_000, 100);
    const victim = (await listWorkers()).find((w) => w.id === running.workerId)!;
    const proc = workers.find((p) => p.pid === victim.pid)!;
    expect(proc).toBeDefined();
    process.kill(victim.pid, 'SIGKILL');
    await proc.exited;

    const done = await until(id, ['completed', 'failed'], 120_000);
    expect(done.error).toBeNull();
    expect(done.status).toBe('completed');
    expect(done.workerId).not.toBe(victim.id);
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(done.result!.windows).toBe(maxWindows);
    expect((await http('GET', `/jobs/${id}/artifacts`)).body).toHaveLength(1);
    expect((await http('GET', `/models/${(await http('GET', `/versions/${versionId}`)).body.modelId}/versions`)).body).toHaveLength(1);
    expect((await http('GET', `/jobs?type=eval&versionId=${versionId}`)).body.total).toBe(2);
    // The dead worker stops heartbeating and is marked gone.
    await waitFor(async () => (await listWorkers()).find((w) => w.id === victim.id)?.status === 'gone', 'killed worker marked gone', 30_000, 250);
  });

  it('runs the quantize pipeline calibrate → auto_awq → convert → eval on the real engine', async () => {
    const r = await http('POST', '/pipelines/quantize', {
      versionId,
      calibrate: { calibDataset: dataset, calibSamples: 4, calibSeqlen: 64 },
      autoAwq: { wBits: 4, wGroupSize: 64 },
      eval: { datasetFile: dataset, seqlen: 128, maxWindows: 4 },
    });
    expect(r.status).toBe(201);
    const [cal, awq, conv, ev] = r.body.jobs;
    const steps: Job[] = [];
    for (const j of [cal, awq, conv, ev]) steps.push(await until(j.id, ['completed', 'failed'], 150_000));
    expect(steps.map((j) => [j.status, j.error])).toEqual([['completed', null], ['completed', null], ['completed', null], ['completed', null]]);
    const awqVersion = (await http('GET', `/versions/${steps[1].result!.versionId}`)).body;
    expect(awqVersion).toMatchObject({ format: 'autoawq', parentVersionId: versionId, quantization: { bits: 4, group_size: 64 } });
    const ws = (await http('GET', `/versions/${steps[2].result!.versionId}`)).body;
    expect(ws).toMatchObject({ format: 'workspace', ancestors: [awqVersion.id, versionId] });
    expect(steps[3].result).toMatchObject({ versionId: ws.id, windows: 4 });
    expect(steps[3].result!.ppl).toBeGreaterThan(1);
    const wsMetrics = (await http('GET', `/versions/${ws.id}`)).body.metrics;
    expect(wsMetrics.ppl).toBeCloseTo(steps[3].result!.ppl, 6);
    // before/after: the base's ppl on these settings came from the eval job above (same text, seqlen, windows)
    const baseline = steps[3].result!.baseline as { versionId: string; ppl: number; measured: boolean };
    expect(baseline).toMatchObject({ versionId, measured: false });
    expect(wsMetrics).toMatchObject({ ppl_before: baseline.ppl, size_bytes: ws.sizeBytes, quantize_seconds: expect.any(Number) });
    expect(wsMetrics.size_ratio).toBeLessThan(1); // W4 g64 weights in the workspace vs the fp16 base
    for (const j of [cal, awq, conv]) expect(((await http('GET', `/jobs/${j.id}/artifacts`)).body as unknown[]).length).toBeGreaterThan(0);
  });

  it('a directory the engine cannot read or does not support is a 400 that says why', async () => {
    const gpt2 = path.join(env.modelRoot, 'gpt2');
    fs.mkdirSync(gpt2);
    fs.writeFileSync(path.join(gpt2, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    const r = await http('POST', '/models', { path: gpt2 });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/GPT2LMHeadModel|safetensors|cannot be read/);
  });

  it('malformed requests get 4xx, never 500', async () => {
    const cases: Array<[string, string, unknown]> = [
      ['GET', '/jobs/not-a-uuid', undefined],
      ['GET', '/models/00000000-0000-0000-0000-000000000000', undefined],
      ['POST', '/jobs', { type: 'eval', params: { versionId, datasetFile: '/etc/passwd' } }],
      ['POST', '/jobs', { type: 'infer', params: { versionId, prompts: [] } }],
      ['POST', '/models', { path: `${env.modelRoot}/../../etc` }],
      ['POST', '/pipelines/quantize', { versionId }],
    ];
    for (const [method, url, body] of cases) {
      const res = await http(method, url, body);
      expect({ url, ok: res.status >= 400 && res.status < 500 }).toEqual({ url, ok: true });
    }
  });

  it('SIGTERM stops a worker cleanly and marks it stopped', async () => {
    const alive = workers.find((p) => p.name.startsWith('worker-quant') && p.child.exitCode === null && p.child.signalCode === null)!;
    const row = (await listWorkers()).find((w) => w.pid === alive.pid)!;
    alive.child.kill('SIGTERM');
    expect(await alive.exited).toEqual({ code: 0, signal: null });
    expect((await listWorkers()).find((w) => w.id === row.id)?.status).toBe('stopped');
  });
});
