// Tensor parallelism through the platform: a deployment with `tp: 2` (LMDeploy's --tp) is loaded by a worker-infer
// process sharded over 2 ranks (cpu: threads), the worker's heartbeat reports the rank devices, and greedy
// completions equal those of the same version deployed with tp 1.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { client } from '../integration/support/http';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { freePort, noteFailures, startApp, stopApps, type AppProcess } from './support/processes';

jest.setTimeout(120_000);

describe('e2e: a tp 2 deployment on api + worker-infer processes', () => {
  let env: TestEnv;
  let logDir: string;
  let http: ReturnType<typeof client>;
  const procs: AppProcess[] = [];
  const run = noteFailures();

  beforeAll(async () => {
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', SERVE_DEPLOYMENT_POLL_MS: '300' });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-tp-logs-'));
    const modelDir = path.join(env.modelRoot, 'tiny-qwen2-tp');
    const { vocabSize } = writeTinyModel(modelDir, { arch: 'qwen2', seed: 21, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    if (vocabSize % 2) writeTinyModel(modelDir, { arch: 'qwen2', seed: 21, hiddenSize: 64, numLayers: 2, intermediateSize: 128, vocabSize: vocabSize + 1 });
    const port = await freePort();
    const base = { ...env.env, PORT: String(port) };
    procs.push(startApp('api', 'api', base, logDir));
    http = client(`http://127.0.0.1:${port}`);
    await waitFor(async () => (await http('GET', '/health')).body?.status === 'ok', 'api health', 60_000, 250);
    procs.push(startApp('worker-infer', 'worker-infer-1', { ...base, WORKER_NAME: 'infer-tp' }, logDir));
    const reg = await http('POST', '/models', { path: modelDir });
    expect(reg.status).toBe(201);
    for (const [name, tp] of [['tiny-tp1', 1], ['tiny-tp2', 2]] as const) {
      const dep = await http('POST', '/deployments', { name, versionId: reg.body.version.id, maxBatchSize: 2, sessionLen: 256, tp });
      expect([dep.status, dep.body.tp]).toEqual([201, tp]);
    }
    for (const name of ['tiny-tp1', 'tiny-tp2'])
      await waitFor(
        async () => ((await http('GET', `/deployments/${name}`)).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'),
        `${name} ready on the worker`,
        60_000,
        250,
      );
  });

  afterAll(async () => {
    await stopApps(procs, { failed: run.failed, logDir });
    await env?.cleanup();
  });

  it('the worker reports the ranks it holds, in the deployment view and in its heartbeat', async () => {
    const dep = (await http('GET', '/deployments/tiny-tp2')).body;
    expect(dep.tp).toBe(2);
    expect(dep.workers).toEqual([expect.objectContaining({ workerName: 'infer-tp', state: 'ready', tp: 2, devices: ['cpu', 'cpu'] })]);
    const one = (await http('GET', '/deployments/tiny-tp1')).body;
    expect(one.workers).toEqual([expect.objectContaining({ state: 'ready', tp: 1, devices: ['cpu'] })]);
    const workers = (await http('GET', '/workers')).body as Array<{ name: string; loadedDeployments: Array<{ name: string; devices?: string[] }> }>;
    const w = workers.find((x) => x.name === 'infer-tp');
    expect(w?.loadedDeployments.find((d) => d.name === 'tiny-tp2')?.devices).toEqual(['cpu', 'cpu']);
  });

  it('greedy completions of the tp 2 deployment equal the tp 1 deployment', async () => {
    for (const prompt of ['def read_file(path):', 'The quick brown fox']) {
      const ask = async (model: string) => {
        const r = await http('POST', '/v1/completions', { model, prompt, max_tokens: 48, temperature: 0, ignore_eos: true });
        expect(r.status).toBe(200);
        return r.body.choices[0].text as string;
      };
      const a = await ask('tiny-tp1');
      expect(a.length).toBeGreaterThan(0);
      expect(await ask('tiny-tp2')).toBe(a);
    }
  });
});
