import { logSoftmaxRef } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, tensor, withSeed } from './testing';

describe('nll', () => {
  it('is -log_softmax at the target', () =>
    withSeed('nll', async (rng) => {
      const [rows, vocab] = [9, 777];
      const x = rng.randn(rows * vocab, 5);
      const t = rng.ints(rows, vocab);
      const inputs = [tensor('f32', [rows, vocab], x), tensor('i32', [rows], t)];
      const [out] = await cpuNative().runOp('nll', inputs, {});
      const ls = logSoftmaxRef(x, rows, vocab);
      expectNmse(Array.from(t, (tt, r) => -ls[r * vocab + tt]), f32Of(out), NMSE_BOUND.f32);
      await compareCudaToCpu('nll', inputs, {});
    }));

  it('rejects a target >= vocab', async () => {
    const inputs = [tensor('f32', [1, 4], [0, 0, 0, 0]), tensor('i32', [1], [4])];
    await expect(cpuNative().runOp('nll', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
