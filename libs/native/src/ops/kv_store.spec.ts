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
});
