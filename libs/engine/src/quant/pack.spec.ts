import { QuantConfigError } from '../errors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { rng as rand } from '../testing/tiny-model';
import {
  AWQ_PACK_ORDER, awqGemmToW4a16, w4a16ToAwqGemm, dequantizeLinear, fromAwqGemm, packAwqInt4, quantizeLinear, toAwqGemm, unpackAwqInt4,
} from './pack';

describe('AutoAWQ GEMM packing', () => {
  it('puts column 8c + [0,2,4,6,1,3,5,7][j] in nibble j', () => {
    const codes = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const [w] = packAwqInt4(codes, 1, 8);
    const nibbles = Array.from({ length: 8 }, (_, j) => (w >>> (4 * j)) & 0xf);
    expect(nibbles).toEqual([...AWQ_PACK_ORDER]);
  });

  it('pack → unpack reproduces the integers exactly on random data', () => {
    const r = rand(7);
    for (const [rows, cols] of [[3, 8], [64, 48], [17, 128]]) {
      const codes = Uint8Array.from({ length: rows * cols }, () => Math.floor(r() * 16));
      expect(unpackAwqInt4(packAwqInt4(codes, rows, cols), rows, cols)).toEqual(codes);
    }
  });

  it('toAwqGemm → fromAwqGemm is exact (codes, zeros, fp16 scales)', () => {
    const r = rand(3);
    const out = 24, inp = 128;
    const w = Float32Array.from({ length: out * inp }, () => (r() - 0.5) * (r() < 0.05 ? 4 : 0.2));
    for (const g of [32, 64, 128]) {
      const ql = quantizeLinear(w, out, inp, 4, g);
      const t = toAwqGemm(ql);
      expect(t.qweight.length).toBe(inp * out / 8);
      expect(t.qzeros.length).toBe((inp / g) * out / 8);
      const back = fromAwqGemm(t, out, inp, g);
      expect(back.q).toEqual(ql.q);
      expect(back.zeros).toEqual(ql.zeros);
      expect(back.scales).toEqual(ql.scales);
      expect(dequantizeLinear(back)).toEqual(dequantizeLinear(ql));
    }
  });
});

describe('group quantization', () => {
  it('4- and 8-bit round to nearest within half a step per group', () => {
    const r = rand(11);
    const out = 8, inp = 64;
    const w = Float32Array.from({ length: out * inp }, () => r() * 2 - 1);
    for (const bits of [4, 8]) {
      const ql = quantizeLinear(w, out, inp, bits, 32);
      const dq = dequantizeLinear(ql);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inp; i++) {
          const s = ql.scales[o * 2 + Math.floor(i / 32)];
          expect(Math.abs(dq[o * inp + i] - w[o * inp + i])).toBeLessThanOrEqual(s * 0.5 + 1e-6 + s * 0.01);
        }
      }
    }
  });

  it('refuses a group size that does not divide in_features, naming the layer and widths', () => {
    expect(() => quantizeLinear(new Float32Array(8 * 96), 8, 96, 4, 64, { layer: 'model.layers.0.mlp.down_proj' })).toThrow(
      /model\.layers\.0\.mlp\.down_proj: in_features 96 is not a multiple of the group size 64 \(weight \[8, 96\]\)/,
    );
  });

  it('refuses bits other than 4/8 and unknown group sizes', () => {
    expect(() => quantizeLinear(new Float32Array(64), 1, 64, 3, 32)).toThrow(QuantConfigError);
    expect(() => quantizeLinear(new Float32Array(64), 1, 64, 4, 48)).toThrow(/group size 48/);
  });
});

describe('awqGemmToW4a16 (the engine workspace layout)', () => {
  const native = nativeCpuOrReport('awqGemmToW4a16 vs native');
  const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  it.each([[24, 96, 32], [40, 256, 64], [16, 384, 128]])('out %d in %d group %d: the native op gives the same y from either layout', async (out, inp, g) => {
    const r = rand(out * inp + g);
    const w = new Float32Array(out * inp).map(() => (r() - 0.5) * 0.3);
    const t = toAwqGemm(quantizeLinear(w, out, inp, 4, g));
    const ours = awqGemmToW4a16(t, out, inp, g);
    expect(ours.kp).toBe(Math.ceil(inp / 128) * 128);
    expect(ours.qweight.length).toBe((out / 8) * ours.kp * 1);
    if (!native) return;
    const m = 3;
    const x = new Float32Array(m * inp).map(() => r() - 0.5);
    const xT = { dtype: 'f32' as const, shape: [m, inp], data: u8(x) };
    const [a] = await native.runOp('w4a16_gemm', [
      xT,
      { dtype: 'i32', shape: [inp, out / 8], data: u8(t.qweight) },
      { dtype: 'i32', shape: [inp / g, out / 8], data: u8(t.qzeros) },
      { dtype: 'f16', shape: [inp / g, out], data: u8(t.scales) },
    ], { group: g });
    const [b] = await native.runOp('w4a16_gemm', [
      xT,
      { dtype: 'i32', shape: [out / 8, ours.kp / 128, 128], data: u8(ours.qweight) },
      { dtype: 'f16', shape: [ours.kp / g, out, 2], data: u8(ours.scalesZeros) },
    ], { group: g, layout: 'lmfleet' });
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it('round trip: AutoAWQ -> W4A16 -> AutoAWQ reproduces every word, zero and scale exactly', () => {
    for (const [out, inp, g] of [[24, 96, 32], [40, 256, 64], [16, 384, 128], [8, 160, 32]]) {
      const r = rand(7 * out + inp);
      const w = new Float32Array(out * inp).map(() => (r() - 0.5) * 0.3);
      const t = toAwqGemm(quantizeLinear(w, out, inp, 4, g));
      const back = w4a16ToAwqGemm(awqGemmToW4a16(t, out, inp, g), out, inp, g);
      expect(Array.from(back.qweight)).toEqual(Array.from(t.qweight));
      expect(Array.from(back.qzeros)).toEqual(Array.from(t.qzeros));
      expect(Array.from(back.scales)).toEqual(Array.from(t.scales));
    }
  });

  it('refuses shapes the layout cannot hold', () => {
    const t = toAwqGemm(quantizeLinear(new Float32Array(16 * 64), 16, 64, 4, 32));
    expect(() => awqGemmToW4a16(t, 16, 64, 64)).toThrow(QuantConfigError);
    expect(() => awqGemmToW4a16(t, 16, 96, 32)).toThrow(/qweight must be/);
  });
});
