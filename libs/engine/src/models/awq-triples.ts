// The one walk over an AutoAWQ checkpoint's `<prefix>.qweight/.qzeros/.scales` triples, shared by loading with
// dequantization (models/awq-dequant.ts) and by `convert --model-format awq` (workspace/convert.ts).
import { QuantConfigError } from '../errors';
import type { TensorSource } from '../native';
import type { AwqGemmTensors } from '../quant/pack';
import { readSourceBytes } from './source-bytes';

export interface AwqTriple {
  prefix: string;
  /** Input features (qweight's rows). */
  inp: number;
  /** Output features (8 per qweight word). */
  out: number;
  gemm: AwqGemmTensors;
}

/** Replaces each triple by what `fn` makes of it; every other tensor passes through, in order. */
export function mapAwqTriples(tensors: readonly TensorSource[], fn: (t: AwqTriple) => TensorSource[]): TensorSource[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  // A copy: the typed-array views need their own aligned buffer (mmap'd or file bytes may start anywhere).
  const view = <A>(b: Uint8Array, C: new (buf: ArrayBuffer) => A): A => new C(b.slice().buffer as ArrayBuffer);
  const out: TensorSource[] = [];
  for (const t of tensors) {
    if (t.name.endsWith('.qzeros') || t.name.endsWith('.scales')) continue;
    if (!t.name.endsWith('.qweight')) {
      out.push(t);
      continue;
    }
    const prefix = t.name.slice(0, -'.qweight'.length);
    const qz = byName.get(`${prefix}.qzeros`);
    const sc = byName.get(`${prefix}.scales`);
    if (!qz || !sc) throw new QuantConfigError(`${prefix}: qweight without qzeros/scales`);
    const [inp, words] = t.shape;
    const gemm = {
      qweight: view(readSourceBytes(t), Int32Array),
      qzeros: view(readSourceBytes(qz), Int32Array),
      scales: view(readSourceBytes(sc), Uint16Array),
    };
    out.push(...fn({ prefix, inp, out: words * 8, gemm }));
  }
  return out;
}
