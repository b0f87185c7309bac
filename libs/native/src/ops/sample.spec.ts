import { sampleRef, SplitMix64 } from './reference';
import { compareCudaToCpu, cpuNative, i32Of, tensor, withSeed } from './testing';

describe('sample', () => {
  const settings = [
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
    { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
    { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1 },
    { temperature: 1.3, topK: 0, topP: 0.9, repetitionPenalty: 1 },
    { temperature: 0.8, topK: 50, topP: 0.8, repetitionPenalty: 1.3 },
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 2 },
  ];
  for (const p of settings) {
    it(`T=${p.temperature} topK=${p.topK} topP=${p.topP} rep=${p.repetitionPenalty}`, () =>
      withSeed('sample', async (rng) => {
        const [rows, vocab, hlen] = [16, 500, 12];
        const logits = rng.randn(rows * vocab, 2);
        const hist = rng.ints(rows * hlen, vocab);
        const seed = rng.int(1 << 30);
        const params = { ...p, seed };
        const inputs = [tensor('f32', [rows, vocab], logits), tensor('i32', [rows, hlen], hist)];
        const [out] = await cpuNative().runOp('sample', inputs, params);
        const rngRef = new SplitMix64(seed);
        const ref = [];
        for (let r = 0; r < rows; r++)
          ref.push(sampleRef(logits.subarray(r * vocab, (r + 1) * vocab), p, rngRef.uniform(), hist.subarray(r * hlen, (r + 1) * hlen)));
        expect(Array.from(i32Of(out))).toEqual(ref);
        await compareCudaToCpu('sample', inputs, params);
      }));
  }

  it('the same seed gives the same tokens', async () => {
    const logits = tensor('f32', [4, 100], Array.from({ length: 400 }, (_, i) => Math.sin(i)));
    const a = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    const b = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    expect(Array.from(i32Of(a[0]))).toEqual(Array.from(i32Of(b[0])));
  });
});
