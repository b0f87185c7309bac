import { compareCudaToCpu, cpuNative, expectNmse, f32Of, tensor, withSeed } from './testing';

describe('add', () => {
  it('adds elementwise', () =>
    withSeed('add', async (rng) => {
      const n = 3 * 1031;
      const a = rng.randn(n);
      const b = rng.randn(n);
      const inputs = [tensor('f32', [3, 1031], a), tensor('f32', [3, 1031], b)];
      const [out] = await cpuNative().runOp('add', inputs, {});
      expectNmse(a.map((x, i) => x + b[i]), f32Of(out), 0);
      await compareCudaToCpu('add', inputs, {});
    }));

  it('rejects different shapes', async () => {
    const inputs = [tensor('f32', [2], [1, 2]), tensor('f32', [3], [1, 2, 3])];
    await expect(cpuNative().runOp('add', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
