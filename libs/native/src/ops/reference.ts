// Straightforward TypeScript references for the op specs and the engine spec's reference forward.
// Written for clarity, not speed; float64 accumulation.
import { f16ToF32, f32ToF16 } from './testing';

export function rmsNormRef(x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  return out;
}

/** y = x W^T + b, W [n, k] row-major. */
export function linearRef(x: Float32Array, w: Float32Array, b: Float32Array | null, m: number, n: number, k: number): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = b ? b[j] : 0;
      for (let l = 0; l < k; l++) s += x[i * k + l] * w[j * k + l];
      y[i * n + j] = s;
    }
  return y;
}

export interface RopeRefParams {
  type: 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn';
  theta: number;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
  maxPositionEmbeddings?: number;
  rotaryDim?: number;
  betaFast?: number;
  betaSlow?: number;
  truncate?: boolean;
}

export function ropeRotaryDim(p: RopeRefParams, headDim: number): number {
  if (!p.rotaryDim) return headDim;
  return p.rotaryDim <= 1 ? Math.round(p.rotaryDim * headDim) : p.rotaryDim;
}

/** Inverse frequencies as HF computes them for each rope type. */
export function ropeInvFreqRef(p: RopeRefParams, headDim: number, seqLen: number): Float32Array {
  const rd = ropeRotaryDim(p, headDim);
  const factor = p.factor ?? 1;
  let base = p.theta;
  if (p.type === 'dynamic') {
    const maxPos = p.originalMaxPositionEmbeddings || p.maxPositionEmbeddings || 2048;
    if (seqLen > maxPos) base = p.theta * ((factor * seqLen) / maxPos - (factor - 1)) ** (rd / (rd - 2));
  }
  const inv = new Float32Array(rd / 2);
  for (let i = 0; i < rd / 2; i++) {
    let f = Math.fround(1 / base ** ((2 * i) / rd));
    if (p.type === 'linear') f = Math.fround(f / factor);
    if (p.type === 'yarn') {
      // the YaRN paper's ramp (as transformers computes it): pair i keeps its frequency above the band of pairs that
      // turn beta_fast .. beta_slow times over the original context, is divided by factor below it, linear in between
      const orig = p.originalMaxPositionEmbeddings!;
      const at = (rot: number) => (rd * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(base));
      let lo = at(p.betaFast ?? 32);
      let hi = at(p.betaSlow ?? 1);
      if (p.truncate !== false) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
      lo = Math.max(lo, 0);
      hi = Math.min(hi, rd - 1);
      if (lo === hi) hi += 0.001;
      const keep = 1 - Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      const interp = Math.fround(1 / (factor * base ** ((2 * i) / rd)));
      f = Math.fround(interp * (1 - keep) + f * keep);
    }
    if (p.type === 'llama3') {
      const old = p.originalMaxPositionEmbeddings || 8192;
      const low = p.lowFreqFactor ?? 1;
      const high = p.highFreqFactor ?? 4;
      const wl = (2 * Math.PI) / f;
      if (wl > old / low) f = Math.fround(f / factor);
      else if (wl >= old / high) {
        const smooth = (old / wl - low) / (high - low);
        f = Math.fround(((1 - smooth) * f) / factor + smooth * f);
      }
    }
    inv[i] = f;
  }
  return inv;
}

/** Rotate-half RoPE in place on x [tokens, heads, headDim]. */
export function ropeRef(x: Float32Array, tokens: number, heads: number, headDim: number, positions: ArrayLike<number>, inv: Float32Array): void {
  const half = inv.length;
  for (let t = 0; t < tokens; t++)
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(positions[t] * inv[i]);
        const c = Math.cos(ang);
        const s = Math.sin(ang);
        const x1 = x[o + i];
        const x2 = x[o + i + half];
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
}

/**
 * Causal GQA attention of q [qLen, heads, D] (positions ctxLen-qLen ..) over contiguous k, v [ctxLen, kvHeads, D].
 * window > 0: a query at position pos sees keys (pos - window, pos] only (sliding-window attention).
 */
export function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, qLen: number, ctxLen: number, heads: number, kvHeads: number, D: number, scale: number, window = 0): Float32Array {
  const out = new Float32Array(qLen * heads * D);
  const group = heads / kvHeads;
  for (let j = 0; j < qLen; j++) {
    const pos = ctxLen - qLen + j;
    const lo = window > 0 ? Math.max(0, pos + 1 - window) : 0;
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      const scores = new Float64Array(pos + 1);
      let mx = -Infinity;
      for (let p = lo; p <= pos; p++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(j * heads + h) * D + d] * k[(p * kvHeads + kh) * D + d];
        scores[p] = s * scale;
        mx = Math.max(mx, scores[p]);
      }
      let sum = 0;
      for (let p = lo; p <= pos; p++) sum += scores[p] = Math.exp(scores[p] - mx);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let p = lo; p <= pos; p++) acc += scores[p] * v[(p * kvHeads + kh) * D + d];
        out[(j * heads + h) * D + d] = acc / sum;
      }
    }
  }
  return out;
}

export function logSoftmaxRef(x: Float32Array, rows: number, vocab: number): Float64Array {
  const out = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let i = 0; i < vocab; i++) mx = Math.max(mx, x[r * vocab + i]);
    let s = 0;
    for (let i = 0; i < vocab; i++) s += Math.exp(x[r * vocab + i] - mx);
    const lse = Math.log(s) + mx;
    for (let i = 0; i < vocab; i++) out[r * vocab + i] = x[r * vocab + i] - lse;
  }
  return out;
}

export function argmaxRef(x: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[offset + i] > x[offset + best]) best = i;
  return best;
}

/** splitmix64, as ops/sample.h: uniform() = top 53 bits / 2^53. */
export class SplitMix64 {
  private state: bigint;
  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  next(): bigint {
    const M = (1n << 64n) - 1n;
    this.state = (this.state + 0x9e3779b97f4a7c15n) & M;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  }
  uniform(): number {
    return Number(this.next() >> 11n) / 9007199254740992;
  }
}

export interface SampleRefParams {
  temperature: number;
  topK: number;
  topP: number;
  /** min-p (0 / absent: off): keep the tokens whose probability is >= minP x the largest. */
  minP?: number;
  repetitionPenalty: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** History entries before this index are the prompt: presence/frequency count the rest. */
  penaltyFrom?: number;
}

/** The sampling rule of ops/sample.h, step by step. `allowed` (guided decoding): bit t % 32 of word t / 32 set = token t
 * may be drawn; the others count as -inf logits. `bias` (logit_bias, dense): added to the logits after that. */
export function sampleRef(
  logits: Float32Array,
  p: SampleRefParams,
  u: number,
  history: ArrayLike<number>,
  allowed?: ArrayLike<number>,
  bias?: ArrayLike<number>,
): number {
  const vocab = logits.length;
  const l = Float32Array.from(logits);
  if (allowed) for (let t = 0; t < vocab; t++) if (!((allowed[t >> 5] >>> (t & 31)) & 1)) l[t] = -Infinity;
  if (bias) for (let t = 0; t < vocab; t++) if (bias[t] !== 0) l[t] = l[t] + bias[t]; // logit_bias, after the mask (f32 adds)
  if (p.repetitionPenalty !== 1) {
    const seen = new Set<number>();
    for (let i = 0; i < history.length; i++) {
      const t = history[i];
      if (t < 0 || t >= vocab || seen.has(t)) continue;
      seen.add(t);
      l[t] = l[t] > 0 ? l[t] / p.repetitionPenalty : l[t] * p.repetitionPenalty;
    }
  }
  const pres = p.presencePenalty ?? 0;
  const freq = p.frequencyPenalty ?? 0;
  if (pres !== 0 || freq !== 0) {
    const count = new Map<number, number>();
    for (let i = Math.max(0, p.penaltyFrom ?? 0); i < history.length; i++) {
      const t = history[i];
      if (t >= 0 && t < vocab) count.set(t, (count.get(t) ?? 0) + 1);
    }
    for (const [t, c] of count) l[t] = l[t] - (Math.fround(freq) * c + Math.fround(pres)); // double, rounded on store
  }
  if (!(p.temperature > 0)) return argmaxRef(l, 0, vocab);
  for (let i = 0; i < vocab; i++) l[i] = l[i] / p.temperature;
  const idx = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => (l[b] - l[a]) || a - b);
  const n = p.topK > 0 && p.topK < vocab ? p.topK : vocab;
  const mx = l[idx[0]];
  const prob = idx.slice(0, n).map((i) => Math.exp(l[i] - mx));
  const sum = prob.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) prob[i] /= sum;
  let keep = n;
  if (p.topP > 0 && p.topP < 1) {
    let cum = 0;
    for (let i = 0; i < n; i++) {
      cum += prob[i];
      if (cum >= Math.fround(p.topP)) {
        keep = i + 1;
        break;
      }
    }
  }
  const minP = Math.fround(p.minP ?? 0);
  if (minP > 0) {
    let k = 1;
    while (k < keep && Math.exp(l[idx[k]] - mx) >= minP) k++;
    keep = k;
  }
  let total = 0;
  for (let i = 0; i < keep; i++) total += prob[i];
  const r = u * total;
  let cum = 0;
  for (let i = 0; i < keep; i++) {
    cum += prob[i];
    if (r < cum) return idx[i];
  }
  return idx[keep - 1];
}

// --- W4A16 (ops/w4a16_gemm.h) ------------------------------------------------------------------------------
/** A random group-quantized weight: codes q [n, k] (0..15), zeros z and f16 scales s [n, k/group]. */
export interface W4Ref {
  n: number;
  k: number;
  group: number;
  q: Uint8Array;
  z: Uint8Array;
  s: Float32Array;
}

/** W' [n, k] = f16((q - z) * s): the dequantized weight every W4A16 path must reproduce. */
export function w4DequantRef(w: W4Ref): Float32Array {
  const G = w.k / w.group;
  const out = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++)
    for (let c = 0; c < w.k; c++) {
      const gi = r * G + Math.floor(c / w.group);
      out[r * w.k + c] = f16ToF32(f32ToF16((w.q[r * w.k + c] - w.z[gi]) * w.s[gi]));
    }
  return out;
}

const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];
/** AutoAWQ GEMM tensors: qweight i32 [k, n/8], qzeros i32 [k/group, n/8], scales f16 [k/group, n] (values). */
export function w4PackAwqRef(w: W4Ref): { qweight: Int32Array; qzeros: Int32Array; scales: Float32Array } {
  const { n, k, group } = w;
  const G = k / group;
  const qweight = new Int32Array(k * (n / 8));
  const qzeros = new Int32Array(G * (n / 8));
  const scales = new Float32Array(G * n);
  for (let c = 0; c < k; c++)
    for (let c8 = 0; c8 < n / 8; c8++) {
      let word = 0;
      for (let j = 0; j < 8; j++) word |= w.q[(c8 * 8 + AWQ_ORDER[j]) * k + c] << (4 * j);
      qweight[c * (n / 8) + c8] = word;
    }
  for (let g = 0; g < G; g++)
    for (let c8 = 0; c8 < n / 8; c8++) {
      let word = 0;
      for (let j = 0; j < 8; j++) word |= w.z[(c8 * 8 + AWQ_ORDER[j]) * G + g] << (4 * j);
      qzeros[g * (n / 8) + c8] = word;
    }
  for (let g = 0; g < G; g++) for (let r = 0; r < n; r++) scales[g * n + r] = w.s[r * G + g];
  return { qweight, qzeros, scales };
}

const W4_KOFF = [0, 8, 16, 24, 1, 9, 17, 25];
/** Our layout, written straight from the header's description (qweight [n/8, kp/128, 128], scales_zeros [kp/group, n, 2]). */
export function w4PackOursRef(w: W4Ref): { qweight: Int32Array; scalesZeros: Float32Array; kp: number } {
  const { n, k, group } = w;
  const kp = Math.ceil(k / 128) * 128;
  const KB = kp / 128;
  const qweight = new Int32Array((n / 8) * KB * 128);
  for (let tile = 0; tile < n / 8; tile++)
    for (let kb = 0; kb < KB; kb++)
      for (let lane = 0; lane < 32; lane++)
        for (let j = 0; j < 4; j++) {
          const g = lane >> 2;
          const t = lane & 3;
          let word = 0;
          for (let p = 0; p < 8; p++) {
            const c = kb * 128 + 32 * j + W4_KOFF[p] + 2 * t;
            if (c < k) word |= w.q[(tile * 8 + g) * k + c] << (4 * p);
          }
          qweight[((tile * KB + kb) * 32 + lane) * 4 + j] = word;
        }
  const G = k / group;
  const scalesZeros = new Float32Array((kp / group) * n * 2);
  for (let g = 0; g < G; g++)
    for (let r = 0; r < n; r++) {
      scalesZeros[(g * n + r) * 2] = w.s[r * G + g];
      scalesZeros[(g * n + r) * 2 + 1] = w.z[r * G + g];
    }
  return { qweight, scalesZeros, kp };
}

/**
 * KV-cache quantization of one row (ops/kv_quant.h): asymmetric, zero = min, scale = (max - min) / (2^bits - 1)
 * (online), or a fixed [scale, zero] (calibrated); q = clamp(floor((x - zero) / scale + 0.5), 0, 2^bits - 1), in f32
 * steps. policy 8: one byte per value; 4: two per byte, low nibble first.
 */
export function kvQuantRowRef(x: ArrayLike<number>, policy: 4 | 8, fixed?: [number, number]): { bytes: Uint8Array; scale: number; zero: number; q: number[] } {
  const f = Math.fround;
  const qmax = policy === 8 ? 255 : 15;
  let scale: number;
  let zero: number;
  if (fixed) {
    [scale, zero] = [f(fixed[0]), f(fixed[1])];
  } else {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < x.length; i++) {
      mn = Math.min(mn, x[i]);
      mx = Math.max(mx, x[i]);
    }
    scale = f(f(mx - mn) / qmax);
    zero = f(mn);
  }
  const inv = scale > 0 ? f(1 / scale) : 0;
  const q = Array.from(x, (v) => Math.min(qmax, Math.max(0, Math.floor(f(f(f(v) - zero) * inv) + 0.5))));
  const bytes = new Uint8Array(policy === 8 ? x.length : x.length / 2);
  for (let i = 0; i < q.length; i++) {
    if (policy === 8) bytes[i] = q[i];
    else bytes[i >> 1] |= q[i] << ((i & 1) * 4);
  }
  return { bytes, scale, zero, q };
}

/** The values a quantized row stands for: q * scale + zero. */
export function kvDequantRowRef(bytes: Uint8Array, n: number, policy: 4 | 8, scale: number, zero: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const q = policy === 8 ? bytes[i] : (bytes[i >> 1] >> ((i & 1) * 4)) & 15;
    out[i] = q * scale + zero;
  }
  return out;
}
