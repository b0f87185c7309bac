import { RopeRefParams, ropeInvFreqRef, ropeRef, ropeRotaryDim } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, tensor, withSeed } from './testing';

describe('rope', () => {
  const variants: Array<[string, RopeRefParams]> = [
    ['default', { type: 'default', theta: 10000 }],
    ['default theta 1e6', { type: 'default', theta: 1e6 }],
    ['linear x4', { type: 'linear', theta: 10000, factor: 4 }],
    ['dynamic NTK (beyond max pos)', { type: 'dynamic', theta: 10000, factor: 2, maxPositionEmbeddings: 64 }],
    ['llama3', { type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 }],
    ['partial rotary 0.5', { type: 'default', theta: 10000, rotaryDim: 0.5 }],
    // YaRN as Qwen3 configures it (factor 4 over 32k: the band sits in the middle of the 32 pairs), one over a short
    // original context with a small base (the band low in the pairs), and one without truncation
    ['yarn x4 (Qwen3)', { type: 'yarn', theta: 1e6, factor: 4, originalMaxPositionEmbeddings: 32768 }],
    ['yarn x4, short context, base 100', { type: 'yarn', theta: 100, factor: 4, originalMaxPositionEmbeddings: 16 }],
    ['yarn untruncated, betas 16 / 2', { type: 'yarn', theta: 10000, factor: 8, originalMaxPositionEmbeddings: 4096, betaFast: 16, betaSlow: 2, truncate: false }],
  ];
  for (const [name, p] of variants) {
    it(name, () =>
      withSeed(`rope ${name}`, async (rng) => {
        const [tokens, heads, hd] = [21, 3, 64];
        const x = rng.randn(tokens * heads * hd);
        const pos = Array.from({ length: tokens }, (_, i) => i * 7 + rng.int(5));
        const params: Record<string, number | string> = { type: p.type, theta: p.theta };
        if (p.factor) params.factor = p.factor;
        if (p.lowFreqFactor) params.lowFreqFactor = p.lowFreqFactor;
        if (p.highFreqFactor) params.highFreqFactor = p.highFreqFactor;
        if (p.originalMaxPositionEmbeddings) params.originalMaxPositionEmbeddings = p.originalMaxPositionEmbeddings;
        if (p.maxPositionEmbeddings) params.maxPositionEmbeddings = p.maxPositionEmbeddings;
        if (p.rotaryDim) params.rotaryDim = p.rotaryDim;
        if (p.betaFast) params.betaFast = p.betaFast;
        if (p.betaSlow) params.betaSlow = p.betaSlow;
        if (p.truncate === false) params.truncate = 0;
        const inputs = [tensor('f32', [tokens, heads, hd], x), tensor('i32', [tokens], pos)];
        const [out] = await cpuNative().runOp('rope', inputs, params);
        const ref = Float32Array.from(x);
        const inv = ropeInvFreqRef(p, hd, Math.max(...pos) + 1);
        ropeRef(ref, tokens, heads, hd, pos, inv);
        expect(ropeRotaryDim(p, hd)).toBe(inv.length * 2);
        expectNmse(ref, f32Of(out), 1e-10);
        // Dims past rotaryDim are untouched.
        if (p.rotaryDim) expect(f32Of(out)[hd - 1]).toBe(x[hd - 1]);
        await compareCudaToCpu('rope', inputs, params);
      }));
  }

  it('longrope / yarn attention factor: multiplies cos and sin on a partially rotated head only', async () => {
    const [tokens, heads, hd] = [5, 2, 16];
    const x = Float32Array.from({ length: tokens * heads * hd }, (_, i) => Math.sin(i * 0.37) + 0.1);
    const pos = [0, 3, 9, 17, 40];
    const run = async (params: Record<string, number | string>) =>
      f32Of((await cpuNative().runOp('rope', [tensor('f32', [tokens, heads, hd], x), tensor('i32', [tokens], pos)], params))[0]);
    for (const type of ['yarn', 'default']) {
      const base = { type, theta: 100, factor: 4, originalMaxPositionEmbeddings: 16, rotaryDim: 8 };
      const [plain, scaled] = [await run({ ...base }), await run({ ...base, attentionFactor: 1.5 })];
      for (let t = 0; t < tokens * heads; t++)
        for (let d = 0; d < hd; d++) {
          const i = t * hd + d;
          // yarn: the 8 rotated dims carry the factor, the 8 passed-through ones not; other types ignore it
          if (type === 'yarn' && d < 8) expect(scaled[i]).toBeCloseTo(1.5 * plain[i], 5);
          else expect(scaled[i]).toBe(plain[i]);
        }
    }
    // a fully rotated head: the factor goes on the attention scale (rope_attention_scale), the rope stays plain
    const full = { type: 'yarn', theta: 100, factor: 4, originalMaxPositionEmbeddings: 16 };
    expect(Array.from(await run({ ...full, attentionFactor: 1.5 }))).toEqual(Array.from(await run(full)));
  });

  it('rejects an odd rotary dim', async () => {
    const inputs = [tensor('f32', [1, 1, 8], new Float32Array(8)), tensor('i32', [1], [0])];
    await expect(cpuNative().runOp('rope', inputs, { rotaryDim: 3 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
