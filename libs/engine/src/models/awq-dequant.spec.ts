import { decodeHalf } from '../io/half';
import type { TensorSource } from '../native';
import { dequantizeLinear, quantizeLinear, toAwqGemm } from '../quant/pack';
import { dequantizeAwqSources } from './awq-dequant';

function rand(n: number, seed: number): Float32Array {
  let a = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1103515245 + 12345) >>> 0;
    out[i] = (a / 2 ** 32 - 0.5) * 0.2;
  }
  return out;
}

describe('dequantizeAwqSources', () => {
  it('turns each qweight/qzeros/scales triple into the fp weight (q - z) * s, [out, in]', () => {
    const out = 16, inp = 64, g = 32;
    const ql = quantizeLinear(rand(out * inp, 3), out, inp, 4, g);
    const t = toAwqGemm(ql);
    const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const sources: TensorSource[] = [
      { name: 'norm.weight', dtype: 'f16', shape: [inp], data: new Uint8Array(inp * 2) },
      { name: 'layers.0.q.qweight', dtype: 'i32', shape: [inp, out / 8], data: u8(t.qweight) },
      { name: 'layers.0.q.qzeros', dtype: 'i32', shape: [inp / g, out / 8], data: u8(t.qzeros) },
      { name: 'layers.0.q.scales', dtype: 'f16', shape: [inp / g, out], data: u8(t.scales) },
      { name: 'layers.0.q.bias', dtype: 'f16', shape: [out], data: new Uint8Array(out * 2) },
    ];
    const res = dequantizeAwqSources(sources, g, 'f16');
    expect(res.map((s) => s.name)).toEqual(['norm.weight', 'layers.0.q.weight', 'layers.0.q.bias']);
    const w = res[1];
    expect(w).toMatchObject({ dtype: 'f16', shape: [out, inp] });
    const ref = dequantizeLinear(ql);
    const got = decodeHalf(w.data!, 'f16');
    for (let i = 0; i < ref.length; i++) expect(got[i]).toBeCloseTo(ref[i], 3);
    const bf = dequantizeAwqSources(sources, g, 'bf16')[1];
    const gotBf = decodeHalf(bf.data!, 'bf16');
    for (let i = 0; i < ref.length; i++) expect(gotBf[i]).toBeCloseTo(ref[i], 2);
    expect(() => dequantizeAwqSources(sources.filter((s) => !s.name.endsWith('qzeros')), g, 'f16')).toThrow(/qweight without qzeros/);
  });
});
