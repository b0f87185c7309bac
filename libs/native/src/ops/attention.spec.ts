import { attentionRef, kvDequantRowRef, kvQuantRowRef } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, guarded, NMSE_BOUND, Rng, tensor, withSeed } from './testing';

/** Builds a paged cache holding each sequence's K/V in shuffled blocks; unused blocks hold NaN guards. */
function pagedCase(rng: Rng, seqs: Array<{ qLen: number; ctxLen: number }>, heads: number, kvHeads: number, D: number, blockSize: number, window = 0) {
  const blocksPer = seqs.map((s) => Math.ceil(s.ctxLen / blockSize));
  const numBlocks = blocksPer.reduce((a, b) => a + b, 0) + 3; // 3 spare (guard) blocks
  const maxBlocks = Math.max(...blocksPer);
  const order = Array.from({ length: numBlocks }, (_, i) => i).sort(() => rng.next() - 0.5);
  const kc = guarded(numBlocks * blockSize * kvHeads * D);
  const vc = guarded(numBlocks * blockSize * kvHeads * D);
  const tables = new Int32Array(seqs.length * maxBlocks);
  const info = new Int32Array(seqs.length * 3);
  const totalQ = seqs.reduce((a, s) => a + s.qLen, 0);
  const q = rng.randn(totalQ * heads * D);
  const ref = new Float32Array(totalQ * heads * D);
  let next = 0;
  let qStart = 0;
  seqs.forEach((s, i) => {
    const k = rng.randn(s.ctxLen * kvHeads * D);
    const v = rng.randn(s.ctxLen * kvHeads * D);
    for (let b = 0; b < blocksPer[i]; b++) tables[i * maxBlocks + b] = order[next++];
    const w = kvHeads * D;
    for (let p = 0; p < s.ctxLen; p++) {
      const slot = tables[i * maxBlocks + Math.floor(p / blockSize)] * blockSize + (p % blockSize);
      kc.set(k.subarray(p * w, (p + 1) * w), slot * w);
      vc.set(v.subarray(p * w, (p + 1) * w), slot * w);
    }
    info.set([qStart, s.qLen, s.ctxLen], i * 3);
    const qs = q.subarray(qStart * heads * D, (qStart + s.qLen) * heads * D);
    ref.set(attentionRef(qs, k, v, s.qLen, s.ctxLen, heads, kvHeads, D, 1 / Math.sqrt(D), window), qStart * heads * D);
    qStart += s.qLen;
  });
  const inputs = [
    tensor('f32', [totalQ, heads, D], q),
    tensor('f32', [numBlocks, blockSize, kvHeads, D], kc),
    tensor('f32', [numBlocks, blockSize, kvHeads, D], vc),
    tensor('i32', [seqs.length, maxBlocks], tables),
    tensor('i32', [seqs.length, 3], info),
  ];
  return { inputs, ref };
}

describe('attention (paged, causal, GQA)', () => {
  const cases: Array<[string, Array<{ qLen: number; ctxLen: number }>, number, number, number, number]> = [
    ['prefill, one sequence, MHA', [{ qLen: 37, ctxLen: 37 }], 4, 4, 32, 16],
    ['prefill GQA 6/2, hd 64', [{ qLen: 70, ctxLen: 70 }], 6, 2, 64, 16],
    ['decode batch (q_len 1) GQA', [{ qLen: 1, ctxLen: 1 }, { qLen: 1, ctxLen: 33 }, { qLen: 1, ctxLen: 64 }, { qLen: 1, ctxLen: 100 }], 8, 2, 64, 32],
    ['chunked prefill + decode mix', [{ qLen: 20, ctxLen: 50 }, { qLen: 1, ctxLen: 9 }, { qLen: 17, ctxLen: 17 }], 4, 1, 64, 8],
  ];
  for (const [name, seqs, heads, kvHeads, D, bs] of cases) {
    it(name, () =>
      withSeed(`attention ${name}`, async (rng) => {
        const { inputs, ref } = pagedCase(rng, seqs, heads, kvHeads, D, bs);
        const [out] = await cpuNative().runOp('attention', inputs, {});
        expectNmse(ref, f32Of(out), NMSE_BOUND.f32); // NaN guards in unused slots would poison this
        await compareCudaToCpu('attention', inputs, {});
      }));
  }

  // Sliding window (Mistral, Phi-3, Qwen2's upper layers): windows shorter than a block, than the chunk, than the context;
  // decode rows whose context is shorter, equal and longer than the window
  const windowed: Array<[number, Array<{ qLen: number; ctxLen: number }>]> = [
    [5, [{ qLen: 37, ctxLen: 37 }, { qLen: 1, ctxLen: 4 }, { qLen: 1, ctxLen: 5 }, { qLen: 1, ctxLen: 6 }]],
    [16, [{ qLen: 20, ctxLen: 50 }, { qLen: 1, ctxLen: 100 }, { qLen: 17, ctxLen: 17 }]],
    [64, [{ qLen: 70, ctxLen: 130 }, { qLen: 1, ctxLen: 64 }]],
  ];
  for (const [window, seqs] of windowed) {
    it(`sliding window ${window}: each query sees its last ${window} positions (prefill, chunked prefill, decode)`, () =>
      withSeed(`attention window ${window}`, async (rng) => {
        const { inputs, ref } = pagedCase(rng, seqs, 4, 2, 32, 8, window);
        const [out] = await cpuNative().runOp('attention', inputs, { window });
        expectNmse(ref, f32Of(out), NMSE_BOUND.f32);
        await compareCudaToCpu('attention', inputs, { window });
      }));
  }
  it('rejects a negative window', async () => {
    const { inputs } = pagedCase(new Rng(3), [{ qLen: 3, ctxLen: 3 }], 2, 2, 16, 8);
    await expect(cpuNative().runOp('attention', inputs, { window: -1 })).rejects.toThrow(/window must be >= 0/);
  });

  // Quantized caches: the cache is written the way kv_store writes it (TS reference quantizer), the reference attends
  // over the dequantized rows; int8/int4 vs the float cache is reported as the quantization's own error.
  for (const policy of [8, 4] as const) {
    it(`quant_policy ${policy}: dequantizes inside attention (prefill + decode mix, GQA)`, () =>
      withSeed(`attention q${policy}`, async (rng) => {
        const seqs = [{ qLen: 20, ctxLen: 50 }, { qLen: 1, ctxLen: 9 }, { qLen: 17, ctxLen: 17 }, { qLen: 1, ctxLen: 70 }];
        const [heads, kvHeads, D, bs] = [4, 2, 32, 8];
        const rb = policy === 8 ? D : D / 2;
        const blocksPer = seqs.map((x) => Math.ceil(x.ctxLen / bs));
        const numBlocks = blocksPer.reduce((a, b) => a + b, 0) + 2;
        const maxBlocks = Math.max(...blocksPer);
        const order = Array.from({ length: numBlocks }, (_, i) => i).sort(() => rng.next() - 0.5);
        const kc = new Uint8Array(numBlocks * bs * kvHeads * rb);
        const vc = new Uint8Array(numBlocks * bs * kvHeads * rb);
        const kp = guarded(numBlocks * bs * kvHeads * 2); // NaN params in unused slots poison a stray read
        const vp = guarded(numBlocks * bs * kvHeads * 2);
        const tables = new Int32Array(seqs.length * maxBlocks);
        const info = new Int32Array(seqs.length * 3);
        const totalQ = seqs.reduce((a, x) => a + x.qLen, 0);
        const q = rng.randn(totalQ * heads * D);
        const ref = new Float32Array(totalQ * heads * D);
        const exact = new Float32Array(totalQ * heads * D);
        let next = 0;
        let qStart = 0;
        seqs.forEach((sq, i) => {
          const k = rng.randn(sq.ctxLen * kvHeads * D);
          const v = rng.randn(sq.ctxLen * kvHeads * D);
          const kd = new Float32Array(k.length);
          const vd = new Float32Array(v.length);
          for (let b = 0; b < blocksPer[i]; b++) tables[i * maxBlocks + b] = order[next++];
          for (let p = 0; p < sq.ctxLen; p++) {
            const slot = tables[i * maxBlocks + Math.floor(p / bs)] * bs + (p % bs);
            for (let h = 0; h < kvHeads; h++) {
              const row = slot * kvHeads + h;
              const o = (p * kvHeads + h) * D;
              for (const [src, cache, par, deq] of [[k, kc, kp, kd], [v, vc, vp, vd]] as const) {
                const r = kvQuantRowRef(src.subarray(o, o + D), policy);
                cache.set(r.bytes, row * rb);
                par.set([r.scale, r.zero], row * 2);
                deq.set(kvDequantRowRef(r.bytes, D, policy, r.scale, r.zero), o);
              }
            }
          }
          info.set([qStart, sq.qLen, sq.ctxLen], i * 3);
          const qs = q.subarray(qStart * heads * D, (qStart + sq.qLen) * heads * D);
          ref.set(attentionRef(qs, kd, vd, sq.qLen, sq.ctxLen, heads, kvHeads, D, 1 / Math.sqrt(D)), qStart * heads * D);
          exact.set(attentionRef(qs, k, v, sq.qLen, sq.ctxLen, heads, kvHeads, D, 1 / Math.sqrt(D)), qStart * heads * D);
          qStart += sq.qLen;
        });
        const inputs = [
          tensor('f32', [totalQ, heads, D], q),
          { dtype: 'u8' as const, shape: [numBlocks, bs, kvHeads, rb], data: kc },
          { dtype: 'u8' as const, shape: [numBlocks, bs, kvHeads, rb], data: vc },
          tensor('i32', [seqs.length, maxBlocks], tables),
          tensor('i32', [seqs.length, 3], info),
          tensor('f32', [numBlocks, bs, kvHeads, 2], kp),
          tensor('f32', [numBlocks, bs, kvHeads, 2], vp),
        ];
        const [out] = await cpuNative().runOp('attention', inputs, { quant_policy: policy });
        expectNmse(ref, f32Of(out), NMSE_BOUND.f32);
        // the quantization itself: int8 stays close to the float cache's attention, int4 further away
        expectNmse(exact, f32Of(out), policy === 8 ? 1e-4 : 2e-2, `int${policy} vs float cache`);
      }));
  }

  it('rejects a block id outside the cache', async () => {
    const inputs = [
      tensor('f32', [1, 1, 4], new Float32Array(4)),
      tensor('f32', [2, 2, 1, 4], new Float32Array(16)),
      tensor('f32', [2, 2, 1, 4], new Float32Array(16)),
      tensor('i32', [1, 1], [5]),
      tensor('i32', [1, 3], [0, 1, 1]),
    ];
    await expect(cpuNative().runOp('attention', inputs, {})).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
