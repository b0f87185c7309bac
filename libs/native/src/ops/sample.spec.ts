import { sampleRef, SplitMix64 } from './reference';
import { compareCudaToCpu, cpuNative, i32Of, tensor, withSeed } from './testing';

describe('sample', () => {
  const settings: Array<{ temperature: number; topK: number; topP: number; repetitionPenalty: number; presencePenalty?: number; frequencyPenalty?: number; penaltyFrom?: number }> = [
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
    { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
    { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1 },
    { temperature: 1.3, topK: 0, topP: 0.9, repetitionPenalty: 1 },
    { temperature: 0.8, topK: 50, topP: 0.8, repetitionPenalty: 1.3 },
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 2 },
    // OpenAI's presence/frequency penalties over the generated part of the history (after penaltyFrom).
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, presencePenalty: 1.5, frequencyPenalty: 0.7, penaltyFrom: 4 },
    { temperature: 0.9, topK: 0, topP: 0.95, repetitionPenalty: 1.2, presencePenalty: -0.5, frequencyPenalty: 2, penaltyFrom: 0 },
    { temperature: 1, topK: 30, topP: 1, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: -1.25, penaltyFrom: 11 },
  ];
  for (const p of settings) {
    it(`T=${p.temperature} topK=${p.topK} topP=${p.topP} rep=${p.repetitionPenalty} pres=${p.presencePenalty ?? 0} freq=${p.frequencyPenalty ?? 0}`, () =>
      withSeed('sample', async (rng) => {
        const [rows, vocab, hlen] = [16, 500, 12];
        const logits = rng.randn(rows * vocab, 2);
        // Few distinct ids, so tokens repeat and the counts matter.
        const hist = rng.ints(rows * hlen, p.frequencyPenalty ? 40 : vocab);
        const seed = rng.int(1 << 30);
        const params: Record<string, number> = { ...p, seed };
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

  it('presence/frequency penalties count only the generated tokens (history after penaltyFrom)', async () => {
    const logits = tensor('f32', [2, 8], [0, 0, 0, 0, 0, 3, 2.5, 0, 0, 0, 0, 0, 0, 3, 2.5, 0]);
    // Row 0: token 5 was generated twice; row 1: token 5 is only in the prompt.
    const hist = tensor('i32', [2, 4], [1, 2, 5, 5, 5, 5, 1, 2]);
    const greedy = async (extra: object) => Array.from(i32Of((await cpuNative().runOp('sample', [logits, hist], { temperature: 0, penaltyFrom: 2, ...extra }))[0]));
    expect(await greedy({})).toEqual([5, 5]);
    expect(await greedy({ presencePenalty: 0.6 })).toEqual([6, 5]); // 3 - 0.6 < 2.5
    expect(await greedy({ frequencyPenalty: 0.3 })).toEqual([6, 5]); // 3 - 2 * 0.3 < 2.5
    expect(await greedy({ frequencyPenalty: 0.2 })).toEqual([5, 5]); // 3 - 0.4 > 2.5
    await compareCudaToCpu('sample', [logits, hist], { temperature: 0, penaltyFrom: 2, presencePenalty: 0.6 });
  });

  it('the same seed gives the same tokens', async () => {
    const logits = tensor('f32', [4, 100], Array.from({ length: 400 }, (_, i) => Math.sin(i)));
    const a = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    const b = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    expect(Array.from(i32Of(a[0]))).toEqual(Array.from(i32Of(b[0])));
  });
});
