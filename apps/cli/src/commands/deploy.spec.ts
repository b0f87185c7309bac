import { run } from '../main';
import { deployBody, kvPolicyOf } from './deploy';
import { captureIO } from '../testing/capture-io';

const V = '11111111-1111-1111-1111-111111111111';

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

describe('lmfleet deploy / deployments / undeploy (--api)', () => {
  beforeAll(() => {
    process.env.LMFLEET_POLL_MS = '1';
  });

  it('passes --tp above 1 as the deployment tp', () => {
    expect(deployBody(V, { name: 'a', tp: 2, wait: true, timeout: 1, json: false })).toEqual({ name: 'a', versionId: V, tp: 2 });
    expect(deployBody(V, { name: 'a', tp: 1, wait: true, timeout: 1, json: false })).toEqual({ name: 'a', versionId: V });
  });

  it('maps LMDeploy flags to the deployment body', () => {
    expect(deployBody(V, { name: 'a', sessionLen: 2048, cacheMaxEntryCount: 0.5, maxBatchSize: 16, quantPolicy: 8, wait: true, timeout: 1, json: false })).toEqual({
      name: 'a', versionId: V, kvPolicy: 'int8', sessionLen: 2048, cacheMaxEntryCount: 0.5, maxBatchSize: 16,
    });
    expect(kvPolicyOf(0)).toBe('fp16');
    expect(() => kvPolicyOf(3)).toThrow(/--quant-policy 3/);
  });

  it('--speculative-algorithm ngram deploys with speculative decoding (4 draft tokens unless given) and shows it', async () => {
    const spec = (argv: string[]) => {
      const api = fakeApi((m, _url, body) => [m === 'POST' ? 201 : 200, { id: 'd3', name: 's', versionId: V, kvPolicy: 'auto', maxBatchSize: 8, maxPending: 32, sessionLen: null, speculative: body?.speculative, workers: [] }]);
      return { api, done: run(['deploy', '--version-id', V, '--name', 's', '--no-wait', '--api', 'http://api', ...argv], io(api.f).io) };
    };
    const a = spec(['--speculative-algorithm', 'ngram']);
    expect(await a.done).toBe(0);
    expect(a.api.calls[0][2]).toEqual({ name: 's', versionId: V, speculative: { method: 'ngram', numDraftTokens: 3 } });
    const b = spec(['--speculative-algorithm', 'ngram', '--speculative-num-draft-tokens', '8', '--prompt-lookup-max', '5', '--prompt-lookup-min', '2']);
    expect(await b.done).toBe(0);
    expect(b.api.calls[0][2].speculative).toEqual({ method: 'ngram', numDraftTokens: 8, promptLookupMax: 5, promptLookupMin: 2 });
    const h = io(fakeApi(() => [200, [{ id: 'd3', name: 's', versionId: V, kvPolicy: 'auto', maxBatchSize: 8, maxPending: 32, sessionLen: null, speculative: { method: 'ngram', numDraftTokens: 4 }, workers: [] }]]).f);
    expect(await run(['deployments', '--api', 'http://api'], h.io)).toBe(0);
    expect(h.out()).toContain('  speculative=ngramx4  ');
    const bad = spec(['--speculative-algorithm', 'eagle']);
    expect(await bad.done).toBe(2);
    expect(bad.api.calls).toEqual([]); // refused before anything is sent
  });

  it('creates the deployment, waits until a worker reports it ready, prints it', async () => {
    let polls = 0;
    const dep = { id: 'd1', name: 'tiny', versionId: V, kvPolicy: 'fp16', maxBatchSize: 8, maxPending: 32, sessionLen: null };
    const api = fakeApi((m, url) => {
      if (m === 'POST' && url === '/deployments') return [201, { ...dep, workers: [] }];
      if (url === '/deployments/d1') return [200, { ...dep, workers: ++polls < 3 ? [{ workerName: 'w1', state: 'loading' }] : [{ workerName: 'w1', state: 'ready' }] }];
      return [404, { statusCode: 404, message: 'no route' }];
    });
    const h = io(api.f);
    expect(await run(['deploy', '--version-id', V, '--name', 'tiny', '--max-batch-size', '8', '--api', 'http://api:3000'], h.io)).toBe(0);
    expect(api.calls[0]).toEqual(['POST', '/deployments', { name: 'tiny', versionId: V, maxBatchSize: 8 }]);
    expect(polls).toBe(3);
    expect(h.out()).toMatch(/^tiny {2}version=1111.* workers: w1:ready/m);
    expect(h.out()).toContain('/v1/chat/completions');
  });

  it('a worker that cannot load it exits 1 with its error; no --api exits 2; undeploy and list', async () => {
    const api = fakeApi((m, url) => {
      if (m === 'POST') return [201, { id: 'd2', name: 'x', versionId: V, workers: [] }];
      if (m === 'DELETE' && url === '/deployments/x') return [200, { id: 'd2', name: 'x' }];
      if (url === '/deployments') return [200, [{ id: 'd2', name: 'x', versionId: V, kvPolicy: 'fp16', maxBatchSize: 1, maxPending: 4, sessionLen: 64, workers: [] }]];
      return [200, { id: 'd2', name: 'x', versionId: V, workers: [{ workerName: 'w1', state: 'failed', error: 'kvPolicy int8: no quantized KV' }] }];
    });
    const h = io(api.f);
    expect(await run(['deploy', '--version-id', V, '--name', 'x', '--api', 'http://api'], h.io)).toBe(1);
    expect(h.err()).toContain('w1 could not load x: kvPolicy int8: no quantized KV');
    expect(await run(['deploy', '--version-id', V, '--name', 'x'], io(api.f).io)).toBe(2);
    const u = io(api.f);
    expect(await run(['undeploy', 'x', '--api', 'http://api'], u.io)).toBe(0);
    expect(u.out()).toBe('undeployed x (d2)\n');
    const l = io(api.f);
    expect(await run(['deployments', '--api', 'http://api'], l.io)).toBe(0);
    expect(l.out()).toMatch(/^x {2}.*no worker yet\n1 deployment\(s\)\n$/);
  });
});
