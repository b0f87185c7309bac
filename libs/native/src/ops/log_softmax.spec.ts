import { logSoftmaxRef } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, tensor, withSeed } from './testing';

describe('log_softmax', () => {
  it('matches the reference', () =>
    withSeed('log_softmax', async (rng) => {
      const [rows, vocab] = [5, 3001];
      const x = rng.randn(rows * vocab, 4);
      const inputs = [tensor('f32', [rows, vocab], x)];
      const [out] = await cpuNative().runOp('log_softmax', inputs, {});
      expectNmse(logSoftmaxRef(x, rows, vocab), f32Of(out), NMSE_BOUND.f32);
      await compareCudaToCpu('log_softmax', inputs, {});
    }));
});
