import { linearRef } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, roundTo, tensor, withSeed } from './testing';

describe('linear', () => {
  const shapes: Array<[number, number, number]> = [
    [1, 16, 8],
    [1, 384, 384],
    [5, 17, 300],
    [13, 100, 513],
    [64, 256, 384],
    [97, 130, 1030],
  ];
  for (const wdtype of ['f32', 'f16', 'bf16'] as const) {
    for (const [m, n, k] of shapes) {
      for (const bias of [false, true]) {
        it(`w ${wdtype} m=${m} n=${n} k=${k}${bias ? ' +bias' : ''}`, () =>
          withSeed(`linear ${wdtype} ${m}x${n}x${k}`, async (rng) => {
            const x = rng.randn(m * k);
            const w = roundTo(wdtype, rng.randn(n * k, 1 / Math.sqrt(k)));
            const b = bias ? roundTo(wdtype, rng.randn(n)) : null;
            const inputs = [tensor('f32', [m, k], x), tensor(wdtype, [n, k], w)];
            if (b) inputs.push(tensor(wdtype, [n], b));
            const [y] = await cpuNative().runOp('linear', inputs, {});
            expect(y.shape).toEqual([m, n]);
            expectNmse(linearRef(x, w, b, m, n, k), f32Of(y), NMSE_BOUND.f32);
            await compareCudaToCpu('linear', inputs, {});
          }));
      }
    }
  }

  it('a row gives the same bits whatever the batch around it (batch invariance)', () =>
    withSeed('linear batch invariance', async (rng) => {
      const k = 300;
      const n = 70;
      const x = rng.randn(20 * k);
      const w = tensor('f16', [n, k], rng.randn(n * k, 0.05));
      const [all] = await cpuNative().runOp('linear', [tensor('f32', [20, k], x), w], {});
      const [one] = await cpuNative().runOp('linear', [tensor('f32', [1, k], x.subarray(7 * k, 8 * k)), w], {});
      expect(Array.from(f32Of(one))).toEqual(Array.from(f32Of(all).subarray(7 * n, 8 * n)));
    }));

  it('rejects mismatched shapes', async () => {
    const inputs = [tensor('f32', [2, 4], new Float32Array(8)), tensor('f32', [3, 5], new Float32Array(15))];
    await expect(cpuNative().runOp('linear', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
