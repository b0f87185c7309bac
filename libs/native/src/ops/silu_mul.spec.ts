import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, tensor, withSeed } from './testing';

describe('silu_mul', () => {
  for (const [rows, n] of [[1, 8], [9, 1024], [4, 333]]) {
    it(`[${rows}, ${n}]`, () =>
      withSeed(`silu_mul ${rows}x${n}`, async (rng) => {
        const g = rng.randn(rows * n, 3);
        const u = rng.randn(rows * n);
        const inputs = [tensor('f32', [rows, n], g), tensor('f32', [rows, n], u)];
        const [out] = await cpuNative().runOp('silu_mul', inputs, {});
        const ref = g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]);
        expectNmse(ref, f32Of(out), NMSE_BOUND.f32);
        await compareCudaToCpu('silu_mul', inputs, {});
      }));
  }
});
