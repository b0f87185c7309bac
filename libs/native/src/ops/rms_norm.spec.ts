import { rmsNormRef } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, roundTo, tensor, withSeed } from './testing';

describe('rms_norm', () => {
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    for (const [rows, dim] of [[1, 8], [7, 384], [33, 1000]]) {
      it(`${dtype} [${rows}, ${dim}]`, () =>
        withSeed(`rms_norm ${dtype} ${rows}x${dim}`, async (rng) => {
          const x = roundTo(dtype, rng.randn(rows * dim, 2));
          const w = roundTo(dtype, rng.randn(dim));
          const inputs = [tensor(dtype, [rows, dim], x), tensor(dtype, [dim], w)];
          const [out] = await cpuNative().runOp('rms_norm', inputs, { eps: 1e-6 });
          expect(out.shape).toEqual([rows, dim]);
          expectNmse(rmsNormRef(x, w, rows, dim, 1e-6), f32Of(out), NMSE_BOUND.f32);
          await compareCudaToCpu('rms_norm', inputs, { eps: 1e-6 });
        }));
    }
  }

  it('rejects a weight of the wrong size', async () => {
    const inputs = [tensor('f32', [2, 4], new Float32Array(8)), tensor('f32', [3], new Float32Array(3))];
    await expect(cpuNative().runOp('rms_norm', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
