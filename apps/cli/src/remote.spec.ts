import * as path from 'node:path';
import { run } from './main';
import { autoAwqParams, calibrateParams, convertParams, evalParams } from './remote';
import { captureIO } from './testing/capture-io';

const V = '11111111-1111-1111-1111-111111111111';

describe('remote mode: LMDeploy flags → job params', () => {
  it('maps calibrate, auto_awq, convert and eval flags', () => {
    expect(calibrateParams(V, { calibDataset: 'd.txt', calibSamples: 4, calibSeqlen: 64 })).toEqual({
      versionId: V, calibDataset: path.resolve('d.txt'), calibSamples: 4, calibSeqlen: 64,
    });
    expect(calibrateParams(V, { calibDataset: 'cmake-docs', calibSamples: 4, calibSeqlen: 64 })).toMatchObject({ calibDataset: 'cmake-docs' }); // built-in: a name
    expect(autoAwqParams(V, { calibDataset: '/x/c.txt', calibSamples: 8, calibSeqlen: 128, wBits: 4, wGroupSize: 64, searchScale: true, searchClip: false })).toEqual({
      versionId: V, calibDataset: '/x/c.txt', calibSamples: 8, calibSeqlen: 128, wBits: 4, wGroupSize: 64, searchScale: true, searchClip: false,
    });
    expect(() => autoAwqParams(V, { calibDataset: 'c', calibSamples: 8, calibSeqlen: 128, wBits: 4, wGroupSize: 64, wSym: true, searchScale: true, searchClip: true })).toThrow(/--w-sym/);
    expect(convertParams(V, { tp: 1 })).toEqual({ versionId: V, format: 'workspace' });
    expect(() => convertParams(V, { tp: 2 })).toThrow(/--tp 2/);
    expect(evalParams(V, { dataset: '/d.txt', seqlen: 128 })).toEqual({ versionId: V, datasetFile: '/d.txt', seqlen: 128 });
    expect(evalParams(V, { dataset: '/d.txt', seqlen: 128, maxWindows: 3 })).toMatchObject({ maxWindows: 3 });
    // KV-cache flags: the policy as a number; the calibration as an absolute directory, or a calibrate job's id.
    expect(evalParams(V, { dataset: '/d.txt', seqlen: 128, quantPolicy: '8', kvCalibDir: '/w/calib' })).toMatchObject({ quantPolicy: 8, kvCalibDir: '/w/calib' });
    expect(convertParams(V, { tp: 1, quantPolicy: '4', kvCalibDir: V })).toEqual({ versionId: V, format: 'workspace', quantPolicy: 4, kvCalibJobId: V });
    expect(convertParams(V, { tp: 1, kvCalibDir: 'rel/dir' })).toMatchObject({ kvCalibDir: path.resolve('rel/dir') });
  });
});

describe('remote mode over a fake API', () => {
  function fakeApi(routes: (method: string, url: string, body: any) => [number, unknown]) {
    const calls: Array<[string, string, any]> = [];
    const f = (async (input: URL, init: RequestInit) => {
      const u = new URL(String(input));
      const body = init.body ? JSON.parse(String(init.body)) : undefined;
      calls.push([init.method!, u.pathname + u.search, body]);
      const [status, res] = routes(init.method!, u.pathname + u.search, body);
      return new Response(JSON.stringify(res), { status });
    }) as unknown as typeof fetch;
    return { f, calls };
  }
  const io = (f: typeof fetch) => captureIO({ fetch: f });

  it('eval ppl --json: finds an already registered model (409), picks the base version, polls and prints JSON', async () => {
    let polls = 0;
    const api = fakeApi((m, url, body) => {
      if (m === 'POST' && url === '/models') return [409, { statusCode: 409, error: 'Conflict', message: 'already registered' }];
      if (url === '/models?limit=200') return [200, { items: [{ id: 'm1', sourcePath: '/models/tiny' }], total: 1 }];
      if (url === '/models/m1/versions') return [200, [{ id: 'child', parentVersionId: V }, { id: V, parentVersionId: null }]];
      if (m === 'POST' && url === '/jobs') return [201, { id: 'j1', type: body.type, status: 'queued', progress: 0 }];
      if (url === '/jobs/j1') return [200, ++polls < 3 ? { id: 'j1', type: 'eval', status: 'running', progress: 0.5 } : { id: 'j1', type: 'eval', status: 'completed', progress: 1, error: null, result: { ppl: 12.5, windows: 2 } }];
      if (url === '/jobs/j1/artifacts') return [200, [{ id: 'a1', kind: 'report' }]];
      return [404, { statusCode: 404, message: 'no route' }];
    });
    process.env.LMFLEET_POLL_MS = '1';
    const h = io(api.f);
    const code = await run(['eval', 'ppl', '/models/tiny', '--dataset', '/models/d.txt', '--seqlen', '128', '--max-windows', '2', '--json', '--api', 'http://api:3000'], h.io);
    expect(h.err()).toContain('eval ppl');
    expect(code).toBe(0);
    expect(api.calls.find((c) => c[1] === '/jobs' && c[0] === 'POST')![2]).toEqual({ type: 'eval', params: { versionId: V, datasetFile: '/models/d.txt', seqlen: 128, maxWindows: 2 } });
    expect(JSON.parse(h.out())).toMatchObject({ jobId: 'j1', status: 'completed', result: { ppl: 12.5 }, artifacts: [{ id: 'a1' }] });
  });

  it('an API error exits 1 with the API message; a failed job exits 1 with its error', async () => {
    const bad = fakeApi(() => [400, { statusCode: 400, error: 'Bad Request', message: 'params.datasetFile: outside MODEL_ROOTS' }]);
    const h = io(bad.f);
    expect(await run(['eval', 'ppl', '--version-id', V, '--dataset', '/etc/passwd', '--seqlen', '128', '--api', 'http://api'], h.io)).toBe(1);
    expect(h.err()).toContain('params.datasetFile: outside MODEL_ROOTS');
    const failing = fakeApi((m, url) => (m === 'POST' ? [201, { id: 'j2', type: 'calibrate', status: 'queued' }] : [200, { id: 'j2', type: 'calibrate', status: 'failed', error: 'boom' }]));
    const h2 = io(failing.f);
    expect(await run(['lite', 'calibrate', '--version-id', V, '--calib-dataset', '/c.txt', '--api', 'http://api'], h2.io)).toBe(1);
    expect(h2.err()).toContain('calibrate job j2 failed: boom');
  });

  it('jobs lists jobs and jobs JOB_ID shows one with its artifacts; without --api it exits 2', async () => {
    const api = fakeApi((_m, url) => {
      if (url === '/jobs?limit=50') return [200, { items: [{ id: 'j1', type: 'eval', status: 'completed', progress: 1 }], total: 1 }];
      if (url === '/jobs/j1') return [200, { id: 'j1', type: 'eval', status: 'completed', progress: 1, error: null, result: { ppl: 3 } }];
      if (url === '/jobs/j1/artifacts') return [200, [{ id: 'a1', kind: 'report' }]];
      return [404, { statusCode: 404, error: 'Not Found', message: 'job not found' }];
    });
    const l = io(api.f);
    expect(await run(['jobs', '--api', 'http://api'], l.io)).toBe(0);
    expect(l.out()).toMatch(/^j1\s+eval\s+completed/m);
    const s = io(api.f);
    expect(await run(['jobs', 'j1', '--json', '--api', 'http://api'], s.io)).toBe(0);
    expect(JSON.parse(s.out())).toMatchObject({ id: 'j1', result: { ppl: 3 }, artifacts: [{ id: 'a1' }] });
    const nf = io(api.f);
    expect(await run(['jobs', 'nope', '--api', 'http://api'], nf.io)).toBe(1);
    expect(nf.err()).toContain('404 Not Found: job not found');
    const local = io(api.f);
    expect(await run(['jobs'], local.io)).toBe(2);
  });
});
