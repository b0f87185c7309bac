import { supportedArchitectures } from '@lmfleet/engine';
import { run } from '../main';
import { checkEnv } from './check-env';
import { captureIO } from '../testing/capture-io';

const makeIO = () => captureIO();

describe('lmfleet check_env / list', () => {
  it('reports each backend, the GPUs and the tools from what the probes return', async () => {
    const rows = new Map(
      await checkEnv({
        binary: (b) => (b === 'cpu' ? '/x/build/cpu/Release/lmfleet_native.node' : null),
        backendInfo: (b) => ({ backend: b, available: true }),
        tool: async (cmd) =>
          cmd === 'nvidia-smi' ? '0, NVIDIA H100 80GB HBM3, 81559 MiB, 580.1\n1, NVIDIA H100 80GB HBM3, 81559 MiB, 580.1\n'
          : cmd === 'nvcc' ? 'nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n'
          : null,
        env: { DATABASE_URL: 'postgres://lmf:secret@db:5432/lmfleet', REDIS_URL: 'redis://127.0.0.1:6379' },
      }),
    );
    expect(rows.get('LMFleet')).toBe('0.1.0');
    expect(rows.get('Node')).toContain(process.version);
    expect(rows.get('backend cpu')).toBe('available (/x/build/cpu/Release/lmfleet_native.node)');
    expect(rows.get('backend cuda')).toMatch(/^not built \(needs a CUDA toolkit with cuBLAS/);
    expect(rows.get('GPUs')).toBe('0, NVIDIA H100 80GB HBM3, 81559 MiB, 580.1; 1, NVIDIA H100 80GB HBM3, 81559 MiB, 580.1');
    expect(rows.get('nvcc')).toBe('CUDA 13.0');
    expect(rows.get('cmake')).toMatch(/^not found/);
    expect(rows.get('DATABASE_URL')).toBe('postgres://lmf:***@db:5432/lmfleet'); // no password on screen
    expect(rows.get('REDIS_URL')).toBe('redis://127.0.0.1:6379');
    expect(rows.has('LMFLEET_API')).toBe(false);
  });

  it('says why a built backend is unavailable', async () => {
    const rows = new Map(
      await checkEnv({
        binary: (b) => `/x/build/${b}/Release/lmfleet_native.node`,
        backendInfo: (b) => (b === 'cuda' ? { backend: b, available: false, reason: 'no CUDA device (cudaGetDeviceCount: no CUDA-capable device is detected)' } : { backend: b, available: true }),
        tool: async () => null,
        env: {},
      }),
    );
    expect(rows.get('backend cuda')).toBe(
      'unavailable: no CUDA device (cudaGetDeviceCount: no CUDA-capable device is detected) (/x/build/cuda/Release/lmfleet_native.node)',
    );
    expect(rows.get('GPUs')).toMatch(/^none found/);
  });

  it('asks the platform API for its health with --api, and says when it cannot be reached', async () => {
    const base = { binary: () => null, tool: async () => null, env: {} };
    const seen: string[] = [];
    const ok = new Map(
      await checkEnv({
        ...base,
        api: 'http://10.0.0.5:3000/',
        fetch: (async (url: string) => {
          seen.push(url);
          return new Response(JSON.stringify({ status: 'degraded', postgres: true, redis: false }), { status: 200 });
        }) as unknown as typeof fetch,
      }),
    );
    expect(seen).toEqual(['http://10.0.0.5:3000/health']);
    expect(ok.get('platform API')).toBe('http://10.0.0.5:3000/health: degraded (postgres up, redis down)');
    const down = new Map(
      await checkEnv({
        ...base,
        api: 'http://10.0.0.5:3000',
        fetch: (async () => {
          throw new TypeError('fetch failed');
        }) as unknown as typeof fetch,
      }),
    );
    expect(down.get('platform API')).toBe('http://10.0.0.5:3000/health: unreachable (fetch failed)');
    expect((await checkEnv(base)).some(([k]) => k === 'platform API')).toBe(false);
  });

  it('runs on this machine: the cpu backend the tests use is built and available', async () => {
    const h = makeIO();
    expect(await run(['check_env'], h.io)).toBe(0);
    expect(h.out()).toMatch(/^LMFleet +0\.1\.0$/m);
    expect(h.out()).toMatch(/^backend cpu +available/m);
    expect(h.out()).toMatch(/^backend cuda +\S/m);
  });

  it('lists the architectures the engine runs', async () => {
    const h = makeIO();
    expect(await run(['list'], h.io)).toBe(0);
    for (const a of supportedArchitectures()) expect(h.out()).toMatch(new RegExp(`^  ${a}( |$)`, 'm'));
    expect(h.out()).toMatch(/^  LlamaForCausalLM$/m); // nothing it cannot do
    expect(h.out()).toMatch(/^  MixtralForCausalLM {2}\(mixture of experts: calibrate and auto_awq run in TypeScript \(no native layer session\)\)$/m);
  });
});
