import { compareCudaToCpu, cpuNative, expectNmse, f32Of, roundTo, tensor, withSeed } from './testing';

describe('embedding', () => {
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    it(`gathers rows (${dtype})`, () =>
      withSeed(`embedding ${dtype}`, async (rng) => {
        const [vocab, hidden, n] = [50, 24, 17];
        const table = roundTo(dtype, rng.randn(vocab * hidden));
        const ids = rng.ints(n, vocab);
        const inputs = [tensor('i32', [n], ids), tensor(dtype, [vocab, hidden], table)];
        const [out] = await cpuNative().runOp('embedding', inputs, {});
        const ref = new Float32Array(n * hidden);
        for (let t = 0; t < n; t++) ref.set(table.subarray(ids[t] * hidden, (ids[t] + 1) * hidden), t * hidden);
        expectNmse(ref, f32Of(out), 0);
        await compareCudaToCpu('embedding', inputs, {}, 0);
      }));
  }

  it('multiplies the rows by scale (Gemma)', () =>
    withSeed('embedding scale', async (rng) => {
      const [vocab, hidden, n] = [30, 16, 9];
      const table = rng.randn(vocab * hidden);
      const ids = rng.ints(n, vocab);
      const inputs = [tensor('i32', [n], ids), tensor('f32', [vocab, hidden], table)];
      const [out] = await cpuNative().runOp('embedding', inputs, { scale: 8 });
      const ref = new Float32Array(n * hidden);
      for (let t = 0; t < n; t++) for (let i = 0; i < hidden; i++) ref[t * hidden + i] = table[ids[t] * hidden + i] * 8;
      expectNmse(ref, f32Of(out), 0);
      await compareCudaToCpu('embedding', inputs, { scale: 8 }, 0);
    }));

  it('rejects an id >= vocab', async () => {
    const inputs = [tensor('i32', [2], [1, 9]), tensor('f32', [9, 4], new Float32Array(36))];
    await expect(cpuNative().runOp('embedding', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
