// The AWQ search's and calibration's per-element loops as native ops (libs/native/src/ops/awq_fake_quant.h,
// channel_stats.h), through runOp: multi-threaded on the cpu backend, one kernel on cuda. The TypeScript
// counterparts (pack.ts quantizeLinear / dequantizeLinear, the column scaling) stay as the reference the specs
// compare against; awq_fake_quant reproduces them bit for bit.
import type { NativeModule } from '../native';
import { asF32, f32Tensor } from './block-forward';
import type { QuantBits, QuantizedLinear } from './pack';

type OpTensor = Parameters<NativeModule['runOp']>[1][number];

/** Q(W diag(s)) diag(s)^-1 with optional per-(row, group) clip (W [out, inp]): AWQ's candidate weights. */
export async function fakeQuantNative(
  native: NativeModule, w: Float32Array, out: number, inp: number, bits: number, groupSize: number,
  opts: { scale?: Float32Array; clip?: Float32Array } = {},
): Promise<Float32Array> {
  const inputs: OpTensor[] = [f32Tensor(w, [out, inp])];
  if (opts.scale) inputs.push(f32Tensor(opts.scale, [inp]));
  if (opts.clip) inputs.push(f32Tensor(opts.clip, [out, inp / groupSize]));
  const [r] = await native.runOp('awq_fake_quant', inputs, { bits, group: groupSize });
  return asF32(r);
}

/** pack.ts quantizeLinear natively: the codes, zeros and scales, and the dequantized weight beside them. */
export async function quantizeLinearNative(
  native: NativeModule, w: Float32Array, out: number, inp: number, bits: QuantBits, groupSize: number, clip?: Float32Array,
): Promise<{ ql: QuantizedLinear; dequantized: Float32Array }> {
  const inputs: OpTensor[] = [f32Tensor(w, [out, inp])];
  if (clip) inputs.push(f32Tensor(clip, [out, inp / groupSize]));
  const [deq, q, zeros, scales] = await native.runOp('awq_fake_quant', inputs, { bits, group: groupSize, codes: 1 });
  return {
    ql: { out, in: inp, bits, groupSize, q: new Uint8Array(q.data), zeros: new Uint8Array(zeros.data), scales: asF32(scales) },
    dequantized: asF32(deq),
  };
}

/**
 * Per-column absmax, sum |x|, min, max of [rows, dim] inputs, accumulated natively (channel_stats). The sum is
 * an f64 per column carried as an f32 (hi, lo) pair between calls.
 */
export class NativeChannelStats {
  absmax: Float32Array;
  abssum: Float32Array;
  min: Float32Array;
  max: Float32Array;
  rows = 0;
  constructor(private readonly native: NativeModule, readonly dim: number) {
    this.absmax = new Float32Array(dim);
    this.abssum = new Float32Array(2 * dim);
    this.min = new Float32Array(dim).fill(Infinity);
    this.max = new Float32Array(dim).fill(-Infinity);
  }
  async add(x: Float32Array): Promise<void> {
    const rows = x.length / this.dim;
    const d = this.dim;
    const [a, s, mn, mx] = await this.native.runOp('channel_stats', [
      f32Tensor(x, [rows, d]), f32Tensor(this.absmax, [d]), f32Tensor(this.abssum, [d, 2]), f32Tensor(this.min, [d]), f32Tensor(this.max, [d]),
    ], {});
    this.absmax = asF32(a);
    this.abssum = asF32(s);
    this.min = asF32(mn);
    this.max = asF32(mx);
    this.rows += rows;
  }
  /** sum |x| of column c (f64). */
  sum(c: number): number {
    return this.abssum[2 * c] + this.abssum[2 * c + 1];
  }
  /** mean |x| per column, as f32. */
  absmean(): Float32Array {
    const out = new Float32Array(this.dim);
    for (let c = 0; c < this.dim; c++) out[c] = this.sum(c) / Math.max(1, this.rows);
    return out;
  }
}
