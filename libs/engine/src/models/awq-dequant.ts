// AutoAWQ (W4A16) checkpoints as their fp16 counterpart: dequantize every linear's qweight/qzeros/scales to the model's
// fp dtype in TypeScript (LoadOptions.awq = 'dequantize'). The default hands the W4A16 tensors to the backend instead.
import { QuantConfigError } from '../errors';
import { f16BitsToF32, f32ToBf16Bits } from '../io/half';
import type { TensorSource } from '../native';
import { dequantizeAwqGemmToF16 } from '../quant/pack';
import { readSourceBytes } from './source-bytes';

/** Replaces each `<prefix>.qweight/.qzeros/.scales` triple by `<prefix>.weight` [out, in] in `dtype`. */
export function dequantizeAwqSources(tensors: readonly TensorSource[], groupSize: number, dtype: 'f16' | 'bf16'): TensorSource[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const out: TensorSource[] = [];
  for (const t of tensors) {
    if (t.name.endsWith('.qzeros') || t.name.endsWith('.scales')) continue;
    if (!t.name.endsWith('.qweight')) {
      out.push(t);
      continue;
    }
    const prefix = t.name.slice(0, -'.qweight'.length);
    if (byName.has(`${prefix}.scales_zeros`)) {
      throw new QuantConfigError(`${prefix}: the engine's W4A16 layout (a workspace) loads natively only; use awq 'native'`);
    }
    const qz = byName.get(`${prefix}.qzeros`);
    const sc = byName.get(`${prefix}.scales`);
    if (!qz || !sc) throw new QuantConfigError(`${prefix}: qweight without qzeros/scales`);
    const [inp, words] = t.shape;
    const outF = words * 8;
    const view = <A>(b: Uint8Array, C: new (buf: ArrayBuffer) => A): A => new C(b.slice().buffer as ArrayBuffer);
    const h = dequantizeAwqGemmToF16(
      {
        qweight: view(readSourceBytes(t), Int32Array),
        qzeros: view(readSourceBytes(qz), Int32Array),
        scales: view(readSourceBytes(sc), Uint16Array),
      },
      outF, inp, groupSize, prefix,
    );
    let data: Uint8Array;
    if (dtype === 'f16') {
      data = new Uint8Array(h.buffer);
    } else {
      const b = new Uint16Array(h.length);
      for (let i = 0; i < h.length; i++) b[i] = f32ToBf16Bits(f16BitsToF32(h[i]));
      data = new Uint8Array(b.buffer);
    }
    out.push({ name: `${prefix}.weight`, dtype, shape: [outF, inp], data });
  }
  return out;
}
