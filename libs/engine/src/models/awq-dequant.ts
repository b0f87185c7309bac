// AutoAWQ (W4A16) checkpoints as their fp16 counterpart: dequantize every linear's qweight/qzeros/scales to the model's
// fp dtype in TypeScript (LoadOptions.awq = 'dequantize'). The default hands the W4A16 tensors to the backend instead.
import { QuantConfigError } from '../errors';
import { f16BitsToF32, f32ToBf16Bits } from '../io/half';
import type { TensorSource } from '../native';
import { dequantizeAwqGemmToF16 } from '../quant/pack';
import { mapAwqTriples } from './awq-triples';

/** Replaces each `<prefix>.qweight/.qzeros/.scales` triple by `<prefix>.weight` [out, in] in `dtype`. */
export function dequantizeAwqSources(tensors: readonly TensorSource[], groupSize: number, dtype: 'f16' | 'bf16'): TensorSource[] {
  const packed = tensors.find((t) => t.name.endsWith('.scales_zeros'));
  if (packed) {
    const prefix = packed.name.slice(0, -'.scales_zeros'.length);
    throw new QuantConfigError(`${prefix}: the engine's W4A16 layout (a workspace) loads natively only; use awq 'native'`);
  }
  return mapAwqTriples(tensors, ({ prefix, inp, out, gemm }) => {
    const h = dequantizeAwqGemmToF16(gemm, out, inp, groupSize, prefix);
    let data: Uint8Array;
    if (dtype === 'f16') {
      data = new Uint8Array(h.buffer);
    } else {
      const b = new Uint16Array(h.length);
      for (let i = 0; i < h.length; i++) b[i] = f32ToBf16Bits(f16BitsToF32(h[i]));
      data = new Uint8Array(b.buffer);
    }
    return [{ name: `${prefix}.weight`, dtype, shape: [out, inp], data }];
  });
}
