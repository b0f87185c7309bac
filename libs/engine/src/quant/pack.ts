// Group-wise asymmetric integer quantization of a linear weight and the AutoAWQ GEMM packing.
//
// Quantization (per output row, per group of `groupSize` consecutive input columns):
//   s = max(max - min, 1e-5) / (2^bits - 1)   (rounded to fp16: the checkpoint stores fp16 scales)
//   z = clamp(round(-min / s), 0, 2^bits - 1)
//   q = clamp(round(w / s) + z, 0, 2^bits - 1)       dequantized: w' = (q - z) * s
//
// AutoAWQ GEMM layout for a linear whose fp weight is W [out, in] (row-major, HF):
//   qweight int32 [in, out/8]: word (i, c) holds q[out = 8c + ORDER[j], in = i] in bits 4j..4j+3, ORDER = [0,2,4,6,1,3,5,7]
//   qzeros  int32 [in/group, out/8]: the same packing of the zero points z[out, g]
//   scales  fp16  [in/group, out]
import { QuantConfigError } from '../errors';
import { f16BitsToF32, f32ToF16Bits } from '../io/half';

/** AutoAWQ's interleaved nibble order: nibble j of a word holds column 8c + AWQ_PACK_ORDER[j]. */
export const AWQ_PACK_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

export type QuantBits = 4 | 8;
export const SUPPORTED_GROUP_SIZES: readonly number[] = [32, 64, 128];

export interface QuantizedLinear {
  out: number;
  in: number;
  bits: QuantBits;
  groupSize: number;
  /** Integer codes q[out, in] (row-major, as W). */
  q: Uint8Array;
  /** Zero points z[out, in/group]. */
  zeros: Uint8Array;
  /** Scales s[out, in/group] (values exactly representable in fp16). */
  scales: Float32Array;
  /** The same codes already packed in the AutoAWQ GEMM layout (the native AWQ session packs them off the JS
   *  thread); toAwqGemm returns it as is. */
  gemm?: AwqGemmTensors;
}

export function checkQuantParams(bits: number, groupSize: number): asserts bits is QuantBits {
  if (bits !== 4 && bits !== 8) throw new QuantConfigError(`unsupported weight bits ${bits} (supported: 4, 8)`);
  if (!SUPPORTED_GROUP_SIZES.includes(groupSize)) {
    throw new QuantConfigError(`unsupported group size ${groupSize} (supported: ${SUPPORTED_GROUP_SIZES.join(', ')})`);
  }
}

/** Throws a QuantConfigError naming the layer when its input width is not a multiple of the group size. */
export function checkGroupDivides(layer: string, out: number, inp: number, groupSize: number): void {
  if (inp % groupSize !== 0) {
    throw new QuantConfigError(
      `${layer}: in_features ${inp} is not a multiple of the group size ${groupSize} (weight [${out}, ${inp}])`,
    );
  }
}

const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/**
 * Quantizes W [out, in] (row-major) group-wise. `clip`, when given, holds a max |w| per (row, group): weights are
 * clamped to [-clip, clip] first (AWQ's clipping search result).
 */
export function quantizeLinear(
  w: Float32Array, out: number, inp: number, bits: number, groupSize: number, opts: { layer?: string; clip?: Float32Array } = {},
): QuantizedLinear {
  checkQuantParams(bits, groupSize);
  checkGroupDivides(opts.layer ?? 'linear', out, inp, groupSize);
  if (w.length !== out * inp) throw new QuantConfigError(`${opts.layer ?? 'linear'}: weight has ${w.length} values, expected ${out}x${inp}`);
  const qmax = (1 << bits) - 1;
  const groups = inp / groupSize;
  const q = new Uint8Array(out * inp);
  const zeros = new Uint8Array(out * groups);
  const scales = new Float32Array(out * groups);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      const base = o * inp + g * groupSize;
      const c = opts.clip ? opts.clip[o * groups + g] : Infinity;
      let mn = Infinity;
      let mx = -Infinity;
      for (let k = 0; k < groupSize; k++) {
        let v = w[base + k];
        if (v > c) v = c;
        else if (v < -c) v = -c;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      let s = roundF16(Math.max(mx - mn, 1e-5) / qmax);
      if (!(s > 0)) s = 6.103515625e-5; // the smallest normal fp16: never a zero scale
      const z = Math.min(qmax, Math.max(0, Math.round(-mn / s)));
      scales[o * groups + g] = s;
      zeros[o * groups + g] = z;
      for (let k = 0; k < groupSize; k++) {
        let v = w[base + k];
        if (v > c) v = c;
        else if (v < -c) v = -c;
        q[base + k] = Math.min(qmax, Math.max(0, Math.round(v / s) + z));
      }
    }
  }
  return { out, in: inp, bits: bits as QuantBits, groupSize, q, zeros, scales };
}

/** W' [out, in] = (q - z) * s. */
export function dequantizeLinear(ql: QuantizedLinear): Float32Array {
  const { out, in: inp, groupSize } = ql;
  const groups = inp / groupSize;
  const w = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      const s = ql.scales[o * groups + g];
      const z = ql.zeros[o * groups + g];
      const base = o * inp + g * groupSize;
      for (let k = 0; k < groupSize; k++) w[base + k] = (ql.q[base + k] - z) * s;
    }
  }
  return w;
}

/** Quantize then dequantize (the "fake quantization" the AWQ search measures). */
export function fakeQuantize(w: Float32Array, out: number, inp: number, bits: number, groupSize: number, clip?: Float32Array): Float32Array {
  return dequantizeLinear(quantizeLinear(w, out, inp, bits, groupSize, { clip }));
}

/**
 * Packs 4-bit codes laid out as M[rows, cols] (row-major; for qweight rows = in, cols = out) into int32 [rows, cols/8]
 * in AutoAWQ's interleaved order.
 */
export function packAwqInt4(codes: ArrayLike<number>, rows: number, cols: number): Int32Array {
  if (cols % 8 !== 0) throw new QuantConfigError(`AutoAWQ packing needs a multiple of 8 columns, got ${cols}`);
  const words = cols / 8;
  const out = new Int32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < words; c++) {
      let word = 0;
      for (let j = 0; j < 8; j++) {
        const v = codes[r * cols + c * 8 + AWQ_PACK_ORDER[j]];
        if (v < 0 || v > 15 || !Number.isInteger(v)) throw new QuantConfigError(`4-bit code out of range: ${v}`);
        word |= v << (4 * j);
      }
      out[r * words + c] = word;
    }
  }
  return out;
}

/** The exact inverse of packAwqInt4: int32 [rows, cols/8] → codes [rows, cols]. */
export function unpackAwqInt4(packed: Int32Array, rows: number, cols: number): Uint8Array {
  if (cols % 8 !== 0 || packed.length !== rows * (cols / 8)) {
    throw new QuantConfigError(`AutoAWQ unpacking: ${packed.length} words do not make [${rows}, ${cols}] 4-bit values`);
  }
  const words = cols / 8;
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < words; c++) {
      const word = packed[r * words + c];
      for (let j = 0; j < 8; j++) out[r * cols + c * 8 + AWQ_PACK_ORDER[j]] = (word >>> (4 * j)) & 0xf;
    }
  }
  return out;
}

export interface AwqGemmTensors {
  /** int32 [in, out/8] */
  qweight: Int32Array;
  /** int32 [in/group, out/8] */
  qzeros: Int32Array;
  /** fp16 bits [in/group, out] */
  scales: Uint16Array;
}

/** A 4-bit QuantizedLinear → AutoAWQ GEMM tensors (transposes to [in, out] and packs). */
export function toAwqGemm(ql: QuantizedLinear): AwqGemmTensors {
  if (ql.bits !== 4) throw new QuantConfigError(`the AutoAWQ GEMM layout holds 4-bit weights only, got ${ql.bits} bits`);
  if (ql.gemm) return ql.gemm;
  const { out, in: inp, groupSize } = ql;
  const groups = inp / groupSize;
  const qT = new Uint8Array(inp * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) qT[i * out + o] = ql.q[o * inp + i];
  const zT = new Uint8Array(groups * out);
  const sT = new Uint16Array(groups * out);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      zT[g * out + o] = ql.zeros[o * groups + g];
      sT[g * out + o] = f32ToF16Bits(ql.scales[o * groups + g]);
    }
  }
  return { qweight: packAwqInt4(qT, inp, out), qzeros: packAwqInt4(zT, groups, out), scales: sT };
}

/** AutoAWQ GEMM tensors → QuantizedLinear (the exact inverse of toAwqGemm). */
export function fromAwqGemm(t: AwqGemmTensors, out: number, inp: number, groupSize: number, layer = 'linear'): QuantizedLinear {
  checkGroupDivides(layer, out, inp, groupSize);
  const groups = inp / groupSize;
  if (t.scales.length !== groups * out) throw new QuantConfigError(`${layer}: scales must be [${groups}, ${out}], got ${t.scales.length} values`);
  const qT = unpackAwqInt4(t.qweight, inp, out);
  const zT = unpackAwqInt4(t.qzeros, groups, out);
  const q = new Uint8Array(out * inp);
  for (let i = 0; i < inp; i++) for (let o = 0; o < out; o++) q[o * inp + i] = qT[i * out + o];
  const zeros = new Uint8Array(out * groups);
  const scales = new Float32Array(out * groups);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < out; o++) {
      zeros[o * groups + g] = zT[g * out + o];
      scales[o * groups + g] = f16BitsToF32(t.scales[g * out + o]);
    }
  }
  return { out, in: inp, bits: 4, groupSize, q, zeros, scales };
}

/** Dequantizes AutoAWQ GEMM tensors straight to W [out, in] as fp16 bits (the CPU reference load path). */
export function dequantizeAwqGemmToF16(t: AwqGemmTensors, out: number, inp: number, groupSize: number, layer = 'linear'): Uint16Array {
  const w = dequantizeLinear(fromAwqGemm(t, out, inp, groupSize, layer));
  const h = new Uint16Array(w.length);
  for (let i = 0; i < w.length; i++) h[i] = f32ToF16Bits(w[i]);
  return h;
}

// --- the engine's own W4A16 layout (libs/native/src/ops/w4a16_gemm.h, described in libs/native/README.md) ---------
// qweight int32 [out/8, kp/128, 128] (kp = in rounded up to 128): for each 8-row tile and 128-column block, 32 lanes x
// 4 words; lane L = 4g + t holds row 8 * tile + g, word j columns 128 kb + 32 j + W4A16_KOFF[p] + 2t in nibble p.
// scalesZeros fp16 [kp/group, out, 2]: (scale, zero point) per group and row; padded groups are (0, 0).
export const W4A16_KOFF: readonly number[] = [0, 8, 16, 24, 1, 9, 17, 25];

export interface W4a16Tensors {
  qweight: Int32Array;
  scalesZeros: Uint16Array;
  /** in rounded up to a multiple of 128 */
  kp: number;
}

/** AutoAWQ GEMM tensors → the engine's W4A16 layout (what `convert --model-format awq` writes into a workspace). */
export function awqGemmToW4a16(t: AwqGemmTensors, out: number, inp: number, groupSize: number, layer = 'linear'): W4a16Tensors {
  checkGroupDivides(layer, out, inp, groupSize);
  if (out % 8 !== 0) throw new QuantConfigError(`${layer}: out features ${out} is not a multiple of 8`);
  const groups = inp / groupSize;
  const words = out / 8;
  if (t.qweight.length !== inp * words) throw new QuantConfigError(`${layer}: qweight must be [${inp}, ${words}], got ${t.qweight.length} values`);
  if (t.qzeros.length !== groups * words) throw new QuantConfigError(`${layer}: qzeros must be [${groups}, ${words}], got ${t.qzeros.length} values`);
  if (t.scales.length !== groups * out) throw new QuantConfigError(`${layer}: scales must be [${groups}, ${out}], got ${t.scales.length} values`);
  const kp = Math.ceil(inp / 128) * 128;
  const KB = kp / 128;
  const qweight = new Int32Array(words * KB * 128);
  // where (row, col) lands: word index and nibble, precomputed per column (the row only adds its tile and g)
  const colWord = new Int32Array(inp);
  const colNib = new Uint8Array(inp);
  for (let c = 0; c < inp; c++) {
    const kb = c >> 7, kk = c & 127, j = kk >> 5, o = kk & 31;
    const step = o >> 4, within = o & 15, hi8 = within >> 3, c8 = within & 7, tt = c8 >> 1, e = c8 & 1;
    colNib[c] = step * 2 + hi8 + 4 * e;
    colWord[c] = (kb * 32 + tt) * 4 + j;
  }
  for (let c = 0; c < inp; c++) {
    const cw = colWord[c];
    const sh = 4 * colNib[c];
    for (let w8 = 0; w8 < words; w8++) {
      const word = t.qweight[c * words + w8];
      const tileBase = w8 * KB * 128 + cw;
      for (let j = 0; j < 8; j++) {
        const g = AWQ_PACK_ORDER[j];
        qweight[tileBase + g * 16] |= ((word >>> (4 * j)) & 0xf) << sh;
      }
    }
  }
  const scalesZeros = new Uint16Array((kp / groupSize) * out * 2);
  for (let g = 0; g < groups; g++)
    for (let w8 = 0; w8 < words; w8++) {
      const zw = t.qzeros[g * words + w8];
      for (let j = 0; j < 8; j++) {
        const r = w8 * 8 + AWQ_PACK_ORDER[j];
        scalesZeros[(g * out + r) * 2] = t.scales[g * out + r];
        scalesZeros[(g * out + r) * 2 + 1] = f32ToF16Bits((zw >>> (4 * j)) & 0xf);
      }
    }
  return { qweight, scalesZeros, kp };
}

/** The exact inverse of awqGemmToW4a16 (workspace → AutoAWQ GEMM tensors); padding must hold code 0 and (0, 0). */
export function w4a16ToAwqGemm(w: W4a16Tensors, out: number, inp: number, groupSize: number, layer = 'linear'): AwqGemmTensors {
  checkGroupDivides(layer, out, inp, groupSize);
  const kp = Math.ceil(inp / 128) * 128;
  const KB = kp / 128;
  const words = out / 8;
  if (w.kp !== kp || w.qweight.length !== words * KB * 128 || w.scalesZeros.length !== (kp / groupSize) * out * 2) {
    throw new QuantConfigError(`${layer}: W4A16 tensors do not match [${out}, ${inp}] with group ${groupSize}`);
  }
  const qweight = new Int32Array(inp * words);
  for (let c = 0; c < kp; c++) {
    const kb = c >> 7, kk = c & 127, j = kk >> 5, o = kk & 31;
    const step = o >> 4, within = o & 15, hi8 = within >> 3, c8 = within & 7, tt = c8 >> 1, e = c8 & 1;
    const sh = 4 * (step * 2 + hi8 + 4 * e);
    const cw = (kb * 32 + tt) * 4 + j;
    for (let w8 = 0; w8 < words; w8++) {
      for (let jj = 0; jj < 8; jj++) {
        const g = AWQ_PACK_ORDER[jj];
        const code = (w.qweight[w8 * KB * 128 + cw + g * 16] >>> sh) & 0xf;
        if (c >= inp) {
          if (code !== 0) throw new QuantConfigError(`${layer}: padded column ${c} holds code ${code}`);
          continue;
        }
        qweight[c * words + w8] |= code << (4 * jj);
      }
    }
  }
  const groups = inp / groupSize;
  const qzeros = new Int32Array(groups * words);
  const scales = new Uint16Array(groups * out);
  for (let g = 0; g < kp / groupSize; g++)
    for (let w8 = 0; w8 < words; w8++)
      for (let jj = 0; jj < 8; jj++) {
        const r = w8 * 8 + AWQ_PACK_ORDER[jj];
        const s = w.scalesZeros[(g * out + r) * 2];
        const z = f16BitsToF32(w.scalesZeros[(g * out + r) * 2 + 1]);
        if (g >= groups) {
          if (s !== 0 || z !== 0) throw new QuantConfigError(`${layer}: padded group ${g} has scale/zero ${s}/${z}`);
          continue;
        }
        if (!(Number.isInteger(z) && z >= 0 && z <= 15)) throw new QuantConfigError(`${layer}: zero point ${z} is not a 4-bit integer`);
        scales[g * out + r] = s;
        qzeros[g * words + w8] |= z << (4 * jj);
      }
  return { qweight, qzeros, scales };
}
