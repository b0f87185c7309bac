import { kvDequantRowRef, kvQuantRowRef } from './reference';
import { compareCudaToCpu, cpuNative, expectGuardsIntact, f32Of, guarded, tensor, withSeed } from './testing';

describe('kv_store', () => {
  it('writes rows to their slots and nothing else', () =>
    withSeed('kv_store', async (rng) => {
      const [tokens, width, slots] = [5, 16, 12];
      const k = rng.randn(tokens * width);
      const v = rng.randn(tokens * width);
      const slotIds = [3, 0, 11, -1, 7];
      const kc = guarded(slots * width);
      const vc = guarded(slots * width);
      const inputs = [
        tensor('f32', [tokens, width], k),
        tensor('f32', [tokens, width], v),
        tensor('i32', [tokens], slotIds),
        tensor('f32', [slots, width], kc),
        tensor('f32', [slots, width], vc),
      ];
      const [ko, vo] = (await cpuNative().runOp('kv_store', inputs, {})).map(f32Of);
      const written = new Set(slotIds.filter((s) => s >= 0));
      for (let t = 0; t < tokens; t++) {
        const s = slotIds[t];
        if (s < 0) continue;
        expect(Array.from(ko.subarray(s * width, (s + 1) * width))).toEqual(Array.from(k.subarray(t * width, (t + 1) * width)));
        expect(Array.from(vo.subarray(s * width, (s + 1) * width))).toEqual(Array.from(v.subarray(t * width, (t + 1) * width)));
      }
      const untouched: Array<[number, number]> = [];
      for (let s = 0; s < slots; s++) if (!written.has(s)) untouched.push([s * width, (s + 1) * width]);
      expectGuardsIntact(ko, untouched, 'k_cache');
      expectGuardsIntact(vo, untouched, 'v_cache');
      await compareCudaToCpu('kv_store', inputs, {});
    }));

  for (const policy of [8, 4] as const) {
    for (const calibrated of [false, true]) {
      it(`quant_policy ${policy} (${calibrated ? 'calibrated' : 'online'}): rows quantized per kv head, as the TS reference does`, () =>
        withSeed(`kv_store q${policy} ${calibrated}`, async (rng) => {
          const [tokens, heads, hd, slots] = [6, 3, 16, 10];
          const width = heads * hd;
          const rb = policy === 8 ? hd : hd / 2;
          const k = rng.randn(tokens * width, 2);
          const v = rng.randn(tokens * width, 0.5);
          const slotIds = [4, 0, 9, -1, 7, 2];
          const kc = new Uint8Array(slots * heads * rb).fill(0xa5); // guard bytes: untouched rows keep them
          const vc = new Uint8Array(slots * heads * rb).fill(0xa5);
          const kp = guarded(slots * heads * 2);
          const vp = guarded(slots * heads * 2);
          // calibrated: a range that clips some values (|x| up to ~6 for k, ~1.5 for v)
          const kStatic = new Float32Array(heads * 2);
          const vStatic = new Float32Array(heads * 2);
          for (let h = 0; h < heads; h++) {
            kStatic.set([4 / (policy === 8 ? 255 : 15), -2], h * 2);
            vStatic.set([1 / (policy === 8 ? 255 : 15), -0.5], h * 2);
          }
          const inputs = [
            tensor('f32', [tokens, width], k),
            tensor('f32', [tokens, width], v),
            tensor('i32', [tokens], slotIds),
            { dtype: 'u8' as const, shape: [slots, heads * rb], data: kc },
            { dtype: 'u8' as const, shape: [slots, heads * rb], data: vc },
            tensor('f32', [slots, heads, 2], kp),
            tensor('f32', [slots, heads, 2], vp),
            ...(calibrated ? [tensor('f32', [heads, 2], kStatic), tensor('f32', [heads, 2], vStatic)] : []),
          ];
          const out = await cpuNative().runOp('kv_store', inputs, { quant_policy: policy, head_dim: hd });
          expect(out.map((o) => o.dtype)).toEqual(['u8', 'u8', 'f32', 'f32']);
          const [kco, vco] = [out[0].data, out[1].data];
          const [kpo, vpo] = [f32Of(out[2]), f32Of(out[3])];
          let off = 0;
          for (const [src, cache, par, fixed] of [[k, kco, kpo, kStatic], [v, vco, vpo, vStatic]] as const) {
            for (let t = 0; t < tokens; t++) {
              const s = slotIds[t];
              if (s < 0) continue;
              for (let h = 0; h < heads; h++) {
                const x = src.subarray(t * width + h * hd, t * width + (h + 1) * hd);
                const ref = kvQuantRowRef(x, policy, calibrated ? [fixed[2 * h], fixed[2 * h + 1]] : undefined);
                const row = s * heads + h;
                expect(par[2 * row]).toBeCloseTo(ref.scale, 6);
                expect(par[2 * row + 1]).toBeCloseTo(ref.zero, 6);
                const got = cache.subarray(row * rb, (row + 1) * rb);
                // same integers (a float rounding tie may move one by a step)
                const deq = kvDequantRowRef(got, hd, policy, ref.scale, ref.zero);
                const want = kvDequantRowRef(ref.bytes, hd, policy, ref.scale, ref.zero);
                for (let d = 0; d < hd; d++) {
                  expect(Math.abs(deq[d] - want[d])).toBeLessThanOrEqual(ref.scale * 1.001 + 1e-7);
                  if (Math.abs(deq[d] - want[d]) > 0) off++;
                  // the round-trip error: half a step inside the range (online ranges always hold the row)
                  const clipped = Math.min(Math.max(x[d], ref.zero), ref.zero + ref.scale * (policy === 8 ? 255 : 15));
                  expect(Math.abs(deq[d] - clipped)).toBeLessThanOrEqual(ref.scale * 0.5 * 1.001 + 1e-6);
                }
              }
            }
            // rows of unwritten slots are untouched
            for (let s = 0; s < slots; s++) {
              if (slotIds.includes(s)) continue;
              expect(Array.from(cache.subarray(s * heads * rb, (s + 1) * heads * rb)).every((b) => b === 0xa5)).toBe(true);
              expect(Number.isNaN(par[s * heads * 2])).toBe(true);
            }
          }
          expect(off).toBeLessThanOrEqual(2);
        }));
    }
  }

  it('rejects a bad quant_policy, a head_dim that does not divide the row, or a float cache', async () => {
    const base = [tensor('f32', [1, 8], new Float32Array(8)), tensor('f32', [1, 8], new Float32Array(8)), tensor('i32', [1], [0])];
    const u8 = { dtype: 'u8' as const, shape: [2, 8], data: new Uint8Array(16) };
    const par = tensor('f32', [2, 2, 2], new Float32Array(8));
    await expect(cpuNative().runOp('kv_store', [...base, u8, u8, par, par], { quant_policy: 6, head_dim: 4 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(cpuNative().runOp('kv_store', [...base, u8, u8, par, par], { quant_policy: 8, head_dim: 3 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    const f32c = tensor('f32', [2, 8], new Float32Array(16));
    await expect(cpuNative().runOp('kv_store', [...base, f32c, f32c, par, par], { quant_policy: 8, head_dim: 4 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
