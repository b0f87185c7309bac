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
    it(`gelu_tanh [${rows}, ${n}] (GeGLU)`, () =>
      withSeed(`gelu_mul ${rows}x${n}`, async (rng) => {
        const g = rng.randn(rows * n, 3);
        const u = rng.randn(rows * n);
        const inputs = [tensor('f32', [rows, n], g), tensor('f32', [rows, n], u)];
        const [out] = await cpuNative().runOp('silu_mul', inputs, { act: 'gelu_tanh' });
        const ref = g.map((x, i) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) * u[i]);
        expectNmse(ref, f32Of(out), NMSE_BOUND.f32);
        await compareCudaToCpu('silu_mul', inputs, { act: 'gelu_tanh' });
      }));
  }
  it('gelu (exact, erf) [3, 257]', () =>
    withSeed('gelu_erf_mul', async (rng) => {
      const [rows, n] = [3, 257];
      const g = rng.randn(rows * n, 1.5);
      const u = rng.randn(rows * n);
      const inputs = [tensor('f32', [rows, n], g), tensor('f32', [rows, n], u)];
      const [out] = await cpuNative().runOp('silu_mul', inputs, { act: 'gelu' });
      // erf by its Taylor series (|x| / sqrt 2 < ~5 here: the series' cancellation in f64 leaves ~1e-7 at worst)
      const erf = (x: number) => {
        let s = 0, term = x;
        for (let k = 0; k < 200; k++) { s += term / (2 * k + 1); term *= (-x * x) / (k + 1); }
        return (2 / Math.sqrt(Math.PI)) * s;
      };
      const ref = g.map((x, i) => 0.5 * x * (1 + erf(x / Math.SQRT2)) * u[i]);
      expectNmse(ref, f32Of(out), NMSE_BOUND.f32);
      await compareCudaToCpu('silu_mul', inputs, { act: 'gelu' });
    }));
  it('refuses an unknown activation', async () => {
    const inputs = [tensor('f32', [1, 2], [1, 2]), tensor('f32', [1, 2], [1, 2])];
    await expect(cpuNative().runOp('silu_mul', inputs, { act: 'relu' })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
