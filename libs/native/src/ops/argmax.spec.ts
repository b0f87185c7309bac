import { compareCudaToCpu, cpuNative, i32Of, tensor, withSeed } from './testing';

describe('argmax', () => {
  it('finds the largest logit per row, lowest index on ties', () =>
    withSeed('argmax', async (rng) => {
      const [rows, vocab] = [7, 1000];
      const x = rng.randn(rows * vocab);
      x[3 * vocab + 10] = 100;
      x[3 * vocab + 20] = 100;
      const inputs = [tensor('f32', [rows, vocab], x)];
      const [out] = await cpuNative().runOp('argmax', inputs, {});
      const ref = [];
      for (let r = 0; r < rows; r++) {
        let best = 0;
        for (let i = 1; i < vocab; i++) if (x[r * vocab + i] > x[r * vocab + best]) best = i;
        ref.push(best);
      }
      expect(Array.from(i32Of(out))).toEqual(ref);
      expect(i32Of(out)[3]).toBe(10);
      await compareCudaToCpu('argmax', inputs, {});
    }));
});
