import { sampleRef, SplitMix64 } from './reference';
import { compareCudaToCpu, cpuNative, i32Of, tensor, withSeed } from './testing';

describe('sample', () => {
  const settings: Array<{ temperature: number; topK: number; topP: number; minP?: number; repetitionPenalty: number; presencePenalty?: number; frequencyPenalty?: number; penaltyFrom?: number }> = [
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
    // min-p alone, after top-k and top-p, and at 1 (only the largest logit is left).
    { temperature: 1, topK: 0, topP: 1, minP: 0.1, repetitionPenalty: 1 },
    { temperature: 1.5, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1 },
    { temperature: 0.8, topK: 0, topP: 1, minP: 1, repetitionPenalty: 1 },
  ];
  for (const p of settings) {
    it(`T=${p.temperature} topK=${p.topK} topP=${p.topP} minP=${p.minP ?? 0} rep=${p.repetitionPenalty} pres=${p.presencePenalty ?? 0} freq=${p.frequencyPenalty ?? 0}`, () =>
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

  it('min-p draws only tokens whose probability is at least minP x the largest', () =>
    withSeed('sample-min-p', async (rng) => {
      const [rows, vocab, minP, temperature] = [64, 300, 0.3, 1.2];
      const logits = rng.randn(rows * vocab, 1.5);
      const params = { temperature, topK: 0, topP: 1, minP, repetitionPenalty: 1, seed: rng.int(1 << 30) };
      const [out] = await cpuNative().runOp('sample', [tensor('f32', [rows, vocab], logits)], params);
      const toks = Array.from(i32Of(out));
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        const mx = Math.max(...row);
        expect(Math.exp((row[toks[r]] - mx) / temperature)).toBeGreaterThanOrEqual(minP);
      }
      // without min-p the same draws reach below the line somewhere
      const [free] = await cpuNative().runOp('sample', [tensor('f32', [rows, vocab], logits)], { ...params, minP: 0 });
      const below = Array.from(i32Of(free)).some((t, r) => {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        return Math.exp((row[t] - Math.max(...row)) / temperature) < minP;
      });
      expect(below).toBe(true);
    }));

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

  // Guided decoding: the third input masks each row's tokens (one bit per token); rows of all ones are unguided.
  const maskRows = (rng: { int(n: number): number }, rows: number, vocab: number, keepOneIn: number): Int32Array => {
    const words = Math.ceil(vocab / 32);
    const m = new Int32Array(rows * words);
    for (let r = 0; r < rows; r++) {
      if (r % 4 === 3) {
        m.fill(-1, r * words, (r + 1) * words); // unguided
        continue;
      }
      for (let t = 0; t < vocab; t++) if (rng.int(keepOneIn) === 0) m[r * words + (t >> 5)] |= 1 << (t & 31);
      const t0 = rng.int(vocab); // at least one token
      m[r * words + (t0 >> 5)] |= 1 << (t0 & 31);
    }
    return m;
  };
  for (const p of [settings[0], settings[1], settings[3], settings[4], settings[7]]) {
    it(`an allowed-token mask: only allowed tokens are drawn (T=${p.temperature} topK=${p.topK} topP=${p.topP} rep=${p.repetitionPenalty})`, () =>
      withSeed('sample-mask', async (rng) => {
        const [rows, vocab, hlen] = [16, 500, 12];
        const words = Math.ceil(vocab / 32);
        const logits = rng.randn(rows * vocab, 2);
        const hist = rng.ints(rows * hlen, vocab);
        const mask = maskRows(rng, rows, vocab, 10);
        const seed = rng.int(1 << 30);
        const params: Record<string, number> = { ...p, seed };
        const inputs = [tensor('f32', [rows, vocab], logits), tensor('i32', [rows, hlen], hist), tensor('i32', [rows, words], mask)];
        const out = Array.from(i32Of((await cpuNative().runOp('sample', inputs, params))[0]));
        const rngRef = new SplitMix64(seed);
        const ref = [];
        for (let r = 0; r < rows; r++) {
          const row = mask.subarray(r * words, (r + 1) * words);
          ref.push(sampleRef(logits.subarray(r * vocab, (r + 1) * vocab), p, rngRef.uniform(), hist.subarray(r * hlen, (r + 1) * hlen), row));
          expect((row[out[r] >> 5] >>> (out[r] & 31)) & 1).toBe(1);
        }
        expect(out).toEqual(ref);
        if (!(p.temperature > 0)) await compareCudaToCpu('sample', inputs, params);
      }));
  }

  for (const p of [settings[0], settings[2], settings[4]]) {
    it(`a logit bias (the fourth input, nonzero entries) moves the draw (T=${p.temperature} topK=${p.topK} rep=${p.repetitionPenalty})`, () =>
      withSeed('sample-bias', async (rng) => {
        const [rows, vocab, hlen] = [8, 300, 6];
        const logits = rng.randn(rows * vocab, 2);
        const hist = rng.ints(rows * hlen, vocab);
        const bias = new Float32Array(rows * vocab);
        for (let r = 0; r < rows; r++) for (let k = 0; k < 5; k++) bias[r * vocab + rng.int(vocab)] = r % 2 ? 100 : rng.int(200) - 100;
        const seed = rng.int(1 << 30);
        const params: Record<string, number> = { ...p, seed };
        const inputs = [tensor('f32', [rows, vocab], logits), tensor('i32', [rows, hlen], hist), tensor('i32', [rows, 0], []), tensor('f32', [rows, vocab], bias)];
        const out = Array.from(i32Of((await cpuNative().runOp('sample', inputs, params))[0]));
        const rngRef = new SplitMix64(seed);
        const ref = [];
        for (let r = 0; r < rows; r++) {
          ref.push(sampleRef(logits.subarray(r * vocab, (r + 1) * vocab), p, rngRef.uniform(), hist.subarray(r * hlen, (r + 1) * hlen), undefined, bias.subarray(r * vocab, (r + 1) * vocab)));
        }
        expect(out).toEqual(ref);
        if (!(p.temperature > 0)) {
          for (let r = 1; r < rows; r += 2) expect(bias[r * vocab + out[r]]).toBe(100); // +100 wins a greedy row
          await compareCudaToCpu('sample', inputs, params);
        }
      }));
  }

  it('a mask that allows a single token always gives it; a malformed mask is refused', async () => {
    const [rows, vocab] = [3, 70];
    const logits = tensor('f32', [rows, vocab], Array.from({ length: rows * vocab }, (_, i) => Math.cos(i)));
    const none = tensor('i32', [rows, 0], []);
    const m = new Int32Array(rows * 3);
    [5, 33, 69].forEach((t, r) => (m[r * 3 + (t >> 5)] |= 1 << (t & 31)));
    const [out] = await cpuNative().runOp('sample', [logits, none, tensor('i32', [rows, 3], m)], { temperature: 1.5, topK: 3, seed: 9 });
    expect(Array.from(i32Of(out))).toEqual([5, 33, 69]);
    await expect(cpuNative().runOp('sample', [logits, none, tensor('i32', [rows, 2], new Int32Array(rows * 2).fill(-1))], {})).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringContaining('allowed must be [rows, 3]'),
    });
    const empty = Int32Array.from(m);
    empty.fill(0, 3, 6);
    empty[5] = 1 << 10; // bit 74: past the vocabulary, so row 1 allows nothing
    await expect(cpuNative().runOp('sample', [logits, none, tensor('i32', [rows, 3], empty)], {})).rejects.toMatchObject({
      message: expect.stringContaining('allowed row 1 allows no token'),
    });
  });

  it('the same seed gives the same tokens', async () => {
    const logits = tensor('f32', [4, 100], Array.from({ length: 400 }, (_, i) => Math.sin(i)));
    const a = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    const b = await cpuNative().runOp('sample', [logits], { temperature: 1, seed: 42 });
    expect(Array.from(i32Of(a[0]))).toEqual(Array.from(i32Of(b[0])));
  });
});
