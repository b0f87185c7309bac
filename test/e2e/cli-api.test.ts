// The lmfleet CLI in remote mode (`--api URL`) against the API and one worker-quant running as real
// processes on real Postgres and Redis: `eval ppl --json`, `lite calibrate` and `convert` (with KV-cache flags) run as
// platform jobs.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { client } from '../integration/support/http';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { freePort, noteFailures, startApp, stopApps, type AppProcess } from './support/processes';

jest.setTimeout(90_000);

const ROOT = path.resolve(__dirname, '../..');

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--require', path.join(ROOT, 'test/e2e/register.js'), path.join(ROOT, 'apps/cli/src/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', LMFLEET_POLL_MS: '200', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('e2e: lmfleet CLI --api against api + worker-quant processes', () => {
  let env: TestEnv;
  let logDir: string;
  let http: ReturnType<typeof client>;
  let apiUrl: string;
  const procs: AppProcess[] = [];
  let modelDir: string;
  let dataset: string;
  const run = noteFailures();

  beforeAll(async () => {
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', WORKER_CONCURRENCY: '1' });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-cli-logs-'));
    modelDir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(modelDir, { arch: 'qwen2', seed: 7, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    dataset = path.join(env.modelRoot, 'corpus.txt');
    const words = ['the', 'model', 'is', 'quantized', 'with', 'awq', 'and', 'served', 'on', 'a', 'fleet'];
    let text = '';
    for (let i = 0; text.length < 20_000; i++) text += words[(i * 7 + (i >> 3)) % words.length] + (i % 11 === 10 ? '.\n' : ' ');
    fs.writeFileSync(dataset, text);

    const port = await freePort();
    const base = { ...env.env, PORT: String(port) };
    procs.push(startApp('api', 'api', base, logDir));
    apiUrl = `http://127.0.0.1:${port}`;
    http = client(apiUrl);
    await waitFor(async () => (await http('GET', '/health')).body?.status === 'ok', 'api health', 60_000, 250);
    procs.push(startApp('worker-quant', 'worker-quant-1', { ...base, WORKER_NAME: 'quant-1' }, logDir));
    await waitFor(async () => ((await http('GET', '/workers')).body as Array<{ status: string }>).some((w) => w.status === 'online'), 'worker online', 60_000, 250);
  });

  afterAll(async () => {
    await stopApps(procs, { failed: run.failed, logDir, tail: 4000 });
    await env?.cleanup();
  });

  it('eval ppl --json --api registers the model, runs an eval job and prints its result', async () => {
    const r = await runCli(['eval', 'ppl', modelDir, '--dataset', dataset, '--seqlen', '64', '--max-windows', '3', '--json', '--api', apiUrl]);
    if (r.code !== 0) run.failed = true;
    expect(r.stderr).toContain('eval ppl');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ type: 'eval', status: 'completed', result: { windows: 3 } });
    expect(out.result.ppl).toBeGreaterThan(1);
    expect(out.artifacts.length).toBeGreaterThan(0);
    const job = (await http('GET', `/jobs/${out.jobId}`)).body;
    expect(job).toMatchObject({ type: 'eval', status: 'completed', params: { datasetFile: dataset, seqlen: 64, maxWindows: 3 } });
    expect(job.result.ppl).toBeCloseTo(out.result.ppl, 6);
    const models = (await http('GET', '/models?limit=200')).body.items as Array<{ sourcePath: string }>;
    expect(models.filter((m) => m.sourcePath === modelDir)).toHaveLength(1);
  });

  it('lite calibrate --api (LMFLEET_API) reuses the registered model (409) and runs a calibrate job', async () => {
    const r = await runCli(['lite', 'calibrate', modelDir, '--calib-dataset', dataset, '--calib-samples', '4', '--calib-seqlen', '32'], { LMFLEET_API: apiUrl });
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.code).toBe(0);
    const id = /^job (\S+) \(calibrate\) completed$/m.exec(r.stdout)?.[1];
    expect(id).toBeDefined();
    expect(r.stdout).toMatch(/^artifact /m);
    const job = (await http('GET', `/jobs/${id}`)).body;
    expect(job).toMatchObject({ type: 'calibrate', status: 'completed', params: { calibDataset: dataset, calibSamples: 4, calibSeqlen: 32 } });
    const models = (await http('GET', '/models?limit=200')).body.items as Array<{ sourcePath: string }>;
    expect(models.filter((m) => m.sourcePath === modelDir)).toHaveLength(1);
  });

  it('KV-cache flags over --api: convert and eval ppl with --quant-policy and --kv-calib-dir (a calibrate job) run on the worker and are recorded', async () => {
    const cal = await runCli(['lite', 'calibrate', modelDir, '--calib-dataset', dataset, '--calib-samples', '4', '--calib-seqlen', '32', '--json', '--api', apiUrl]);
    expect(cal.code).toBe(0);
    const calId = JSON.parse(cal.stdout).jobId as string;

    const conv = await runCli(['convert', 'qwen2', modelDir, '--quant-policy', '8', '--kv-calib-dir', calId, '--json', '--api', apiUrl]);
    expect(conv.stderr).not.toMatch(/^error/m);
    expect(conv.code).toBe(0);
    const out = JSON.parse(conv.stdout);
    expect(out.result.kvCache).toEqual({ quantPolicy: 8, calibrated: true, calibJobId: calId });
    const ws = (await http('GET', `/versions/${out.versionId}`)).body;
    expect(ws).toMatchObject({ format: 'workspace', info: { kvCache: { quantPolicy: 8, calibrated: true, calibJobId: calId } } });
    // The engine wrote the policy and the calibrated scales into the workspace (what a deployment with kvPolicy auto serves).
    const manifest = JSON.parse(fs.readFileSync(path.join(ws.path, 'lmfleet.json'), 'utf8'));
    expect(manifest.kvCache).toMatchObject({ quantPolicy: 8, qparams: { source: expect.stringContaining(`jobs/${calId}/calibration`) } });

    const online = await runCli(['eval', 'ppl', modelDir, '--dataset', dataset, '--seqlen', '64', '--max-windows', '2', '--quant-policy', '8', '--json', '--api', apiUrl]);
    expect(online.code).toBe(0);
    expect(JSON.parse(online.stdout).result).toMatchObject({ quantPolicy: 8, kvCache: 'int8 online' });
    const calibrated = await runCli(['eval', 'ppl', modelDir, '--dataset', dataset, '--seqlen', '64', '--max-windows', '2', '--quant-policy', '4', '--kv-calib-dir', calId, '--json', '--api', apiUrl]);
    expect(calibrated.code).toBe(0);
    const r = JSON.parse(calibrated.stdout).result;
    expect(r).toMatchObject({ quantPolicy: 4, kvCalibJobId: calId, kvCache: expect.stringMatching(/^int4 calibrated/) });
    const base = (await http('GET', `/versions/${JSON.parse(online.stdout).result.versionId}`)).body;
    expect(base.metrics).toMatchObject({ ppl_kv_int8: expect.any(Number), ppl_kv_int4: r.ppl });
  });

  it('an API validation error exits 1 with the API message', async () => {
    const r = await runCli(['eval', 'ppl', modelDir, '--dataset', '/etc/passwd', '--seqlen', '64', '--api', apiUrl]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: POST \/jobs: 400/);
  });
});
