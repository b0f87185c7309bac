// A layer-by-layer forward of a decoder model in TypeScript over native `runOp` calls (linear, rope tables, attention;
// the elementwise steps run here). The native decoder exposes logits only; calibration and the AWQ search need the
// activations inside each layer (the inputs of every linear, K and V) and need to re-run one module with modified
// weights. Weights live here as f32 arrays in canonical names (see libs/native/src/types.ts), so quantization code
// can read and replace them.
//
// Sequences are batched: `x` holds the tokens of several sequences back to back ([tokens, hidden]); `seqLens` says
// where each one ends. Attention is causal within each sequence (one KV "block" per sequence for the attention op).
// Gemma's layers run here too (the native layer session does not run them): the embedding times spec.embedScale, norms
// whose canonical weights load as 1 + w (TensorSource.add), a gelu_tanh MLP (Gemma 1 / 2 / 3), the sandwich norms
// (attn_out_norm / mlp_out_norm on the attention and MLP outputs before their residual adds; Gemma 2 / 3), Gemma 2's
// soft-capping (attention scores through the attention op's `softcap`, final logits in `head`) and Gemma 3's sliding
// layers' own RoPE (spec.ropeLocal).
import { InvalidArgumentError, NotSupportedError } from '../errors';
import { loadModelSpec, loadModelWeights, type LoadedModelSpec } from '../models/load';
import { readSourceF32 } from '../models/source-bytes';
import type { ModelSpec } from '../models/spec';
import type { NativeModule, RopeConfig, TensorSource } from '../native';

export { readSourceF32 };

type OpTensor = Parameters<NativeModule['runOp']>[1][number];

export const LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LinearName = (typeof LINEARS)[number];

/** A mixture-of-experts layer's routing and expert activations (BlockForward.moeBlock). */
export interface ExpertTaps {
  /** The token rows (of the layer's input) routed to the expert, in token order. */
  tokens: Int32Array;
  /** silu(gate) * up of those tokens: the input of the expert's down. [tokens.length, moeIntermediateSize] */
  downIn: Float32Array;
}

/** The layer taps that are one [tokens, width] array. */
export type TapName = 'attnIn' | 'k' | 'v' | 'oIn' | 'mlpIn' | 'downIn';

/** The activations of one layer that calibration and AWQ look at. */
export interface LayerTaps {
  /** input_norm output: the input of q, k, v. [tokens, hidden] */
  attnIn: Float32Array;
  /** K after RoPE and V, [tokens, kvHeads * headDim]. */
  k: Float32Array;
  v: Float32Array;
  /** attention output before o: the input of o. [tokens, heads * headDim] */
  oIn: Float32Array;
  /** post_norm output: the input of gate, up. */
  mlpIn: Float32Array;
  /** act(gate) * up (silu, or Gemma's gelu_tanh): the input of down. [tokens, intermediate] (dense layers) */
  downIn: Float32Array;
  /** A mixture-of-experts layer: per expert its tokens and down input (mlpIn is the router's and every expert's
   *  gate / up input). */
  experts: ExpertTaps[];
}

/** The rows of x [rows, dim] at `rows` (a token subset: the tokens routed to an expert). */
export function gatherRows(x: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(x.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}

export function f32Tensor(data: Float32Array, shape: number[]): OpTensor {
  return { dtype: 'f32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function i32Tensor(data: Int32Array, shape: number[]): OpTensor {
  return { dtype: 'i32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function asF32(t: OpTensor): Float32Array {
  const d = t.data;
  if (d.byteOffset % 4 === 0) return new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4);
  return new Float32Array(d.slice().buffer);
}

/** erf in f64: its Taylor series below |x| = 4 (cancellation leaves ~1e-9), the asymptotic series of erfc above. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 4) {
    let s = 0;
    let term = a;
    for (let k = 0; k < 120; k++) {
      const t = term / (2 * k + 1);
      s += t;
      if (Math.abs(t) < 1e-17 * s) break;
      term *= (-a * a) / (k + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * s;
  }
  const z = 1 / (2 * a * a);
  return Math.sign(x) * (1 - (Math.exp(-a * a) / (a * Math.sqrt(Math.PI))) * (1 - z + 3 * z * z - 15 * z ** 3 + 105 * z ** 4));
}

export class BlockForward {
  /** Canonical name → f32 values. Quantization code replaces entries (scaled / fake-quantized weights). */
  readonly weights: Map<string, Float32Array>;

  constructor(readonly native: NativeModule, readonly spec: ModelSpec, weights: Map<string, Float32Array>) {
    this.weights = weights;
  }

  /** Loads an fp16/bf16 Hugging Face directory (an AWQ checkpoint is refused: calibrate the fp16 model). */
  static fromDir(native: NativeModule, dir: string): { fwd: BlockForward; loaded: LoadedModelSpec; sources: TensorSource[] } {
    const loaded = loadModelSpec(dir);
    if (loaded.spec.quant) throw new NotSupportedError(`${loaded.dir} is already quantized (${loaded.spec.quant.method}); calibrate the fp16/bf16 model`);
    const { tensors } = loadModelWeights(loaded);
    const w = new Map<string, Float32Array>();
    for (const t of tensors) w.set(t.name, readSourceF32(t));
    return { fwd: new BlockForward(native, loaded.spec, w), loaded, sources: tensors };
  }

  w(name: string): Float32Array {
    const t = this.weights.get(name);
    if (!t) throw new InvalidArgumentError(`block forward: no tensor ${name}`);
    return t;
  }

  has(name: string): boolean {
    return this.weights.has(name);
  }

  /** True when layer i's MLP is a mixture of experts (router + experts) rather than one gate / up / down. */
  isMoeLayer(i: number): boolean {
    return !!this.spec.numExperts && !this.spec.denseLayers?.includes(i);
  }

  /** The linears of layer i in canonical names (relative to `layers.{i}.`), q, k, v, o first: the dense MLP's gate, up,
   *  down, or a mixture of experts' router and each expert's `experts.{e}.gate`, `.up`, `.down`. */
  layerLinears(i: number): string[] {
    if (!this.isMoeLayer(i)) return [...LINEARS];
    const out = ['q', 'k', 'v', 'o', 'router'];
    for (let e = 0; e < this.spec.numExperts!; e++) out.push(`experts.${e}.gate`, `experts.${e}.up`, `experts.${e}.down`);
    return out;
  }

  /** [out, in] of a canonical linear (a layer linear's name as layerLinears gives it). */
  linearShape(name: LinearName | string): [number, number] {
    const { hiddenSize: h, numHeads, numKvHeads, headDim: hd, intermediateSize: ff } = this.spec;
    if (name === 'router') return [this.spec.numExperts ?? 0, h];
    const ex = /^experts\.\d+\.(gate|up|down)$/.exec(name);
    if (ex) {
      const im = this.spec.moeIntermediateSize ?? 0;
      return ex[1] === 'down' ? [h, im] : [im, h];
    }
    switch (name) {
      case 'q': return [numHeads * hd, h];
      case 'k':
      case 'v': return [numKvHeads * hd, h];
      case 'o': return [h, numHeads * hd];
      case 'gate':
      case 'up': return [ff, h];
      case 'down': return [h, ff];
    }
    throw new InvalidArgumentError(`block forward: no linear ${name}`);
  }

  // Elementwise ops run in TypeScript: through runOp each costs a copy in and out of native memory, which dominates
  // for them (the heavy ops, linear and attention, go to native code; silu_mul: see actMul). The RoPE table itself
  // comes from the native op.
  /** The embedding rows of `ids`, times spec.embedScale (Gemma; in f32, as the engine applies it) when set. */
  async embed(ids: Int32Array): Promise<Float32Array> {
    const table = this.w('embed_tokens.weight');
    const h = this.spec.hiddenSize;
    const out = new Float32Array(ids.length * h);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < this.spec.vocabSize)) throw new InvalidArgumentError(`token id ${id} out of range [0, ${this.spec.vocabSize})`);
      out.set(table.subarray(id * h, (id + 1) * h), t * h);
    }
    const k = this.spec.embedScale;
    if (k !== undefined && k !== 1) for (let i = 0; i < out.length; i++) out[i] *= k;
    return out;
  }

  async rmsNorm(x: Float32Array, weight: Float32Array): Promise<Float32Array> {
    const dim = weight.length;
    const rows = x.length / dim;
    const eps = this.spec.rmsNormEps;
    const out = new Float32Array(x.length);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let c = 0; c < dim; c++) ss += x[o + c] * x[o + c];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let c = 0; c < dim; c++) out[o + c] = x[o + c] * inv * weight[c];
    }
    return out;
  }

  /** y = x W^T + b with an explicit weight (for searches over candidate weights). */
  async linearWith(x: Float32Array, w: Float32Array, out: number, inp: number, bias?: Float32Array): Promise<Float32Array> {
    const rows = x.length / inp;
    if (!Number.isInteger(rows)) throw new InvalidArgumentError(`linear: input of ${x.length} values is not a multiple of ${inp}`);
    const inputs = [f32Tensor(x, [rows, inp]), f32Tensor(w, [out, inp])];
    if (bias) inputs.push(f32Tensor(bias, [out]));
    const [r] = await this.native.runOp('linear', inputs, {});
    return asF32(r);
  }

  async linear(layer: number, name: LinearName | string, x: Float32Array, weight?: Float32Array): Promise<Float32Array> {
    const [out, inp] = this.linearShape(name);
    const bias = this.weights.get(`layers.${layer}.${name}.bias`);
    return this.linearWith(x, weight ?? this.w(`layers.${layer}.${name}.weight`), out, inp, bias);
  }

  /** The RoPE of layer i: spec.ropeLocal on a sliding-window layer when the model has one (Gemma 3), else spec.rope. */
  ropeOf(layer: number): RopeConfig {
    return this.spec.ropeLocal && (this.spec.layerWindows?.[layer] ?? 0) > 0 ? this.spec.ropeLocal : this.spec.rope;
  }

  private ropeParams(r: RopeConfig, maxLen: number): Record<string, number | string> {
    const p: Record<string, number | string> = { type: r.type, theta: r.theta, maxPositionEmbeddings: this.spec.maxPositionEmbeddings, seqLen: maxLen };
    if (r.factor !== undefined) p.factor = r.factor;
    if (r.lowFreqFactor !== undefined) p.lowFreqFactor = r.lowFreqFactor;
    if (r.highFreqFactor !== undefined) p.highFreqFactor = r.highFreqFactor;
    if (r.originalMaxPositionEmbeddings !== undefined) p.originalMaxPositionEmbeddings = r.originalMaxPositionEmbeddings;
    if (r.rotaryDim !== undefined) p.rotaryDim = r.rotaryDim;
    if (r.betaFast !== undefined) p.betaFast = r.betaFast;
    if (r.betaSlow !== undefined) p.betaSlow = r.betaSlow;
    if (r.truncate !== undefined) p.truncate = r.truncate ? 1 : 0;
    if (r.attentionFactor !== undefined) p.attentionFactor = r.attentionFactor;  // the op applies it on a partial head
    return p;
  }

  private scalesAttention(r: RopeConfig): boolean {
    return (r.type === 'longrope' || r.type === 'yarn') && (r.rotaryDim ?? this.spec.headDim) === this.spec.headDim;
  }

  private positions(seqLens: readonly number[]): Int32Array {
    const total = seqLens.reduce((a, b) => a + b, 0);
    const pos = new Int32Array(total);
    let t = 0;
    for (const L of seqLens) for (let j = 0; j < L; j++) pos[t++] = j;
    return pos;
  }

  private ropeTables = new Map<RopeConfig, Map<number, { cos: Float32Array; sin: Float32Array; half: number }>>();

  /** cos/sin per position and rotary pair of RoPE `r`, read off the native rope op applied to unit vectors. */
  private async ropeTable(r0: RopeConfig, maxLen: number): Promise<{ cos: Float32Array; sin: Float32Array; half: number }> {
    const byLen = this.ropeTables.get(r0) ?? new Map<number, { cos: Float32Array; sin: Float32Array; half: number }>();
    this.ropeTables.set(r0, byLen);
    let t = byLen.get(maxLen);
    if (t) return t;
    const hd = this.spec.headDim;
    // rotary pairs (i, i + half) for i < half: half the rotated dims (a partial rotary head leaves the rest alone)
    let half = hd / 2;
    const rd = r0.rotaryDim;
    if (rd !== undefined) half = Math.floor((rd <= 1 ? rd * hd : rd) / 2);
    // probe: each position holds one head whose pairs' first elements are 1 and the rest 0 → rotated to (cos, sin)
    const probe = new Float32Array(maxLen * hd);
    for (let p = 0; p < maxLen; p++) for (let i = 0; i < half; i++) probe[p * hd + i] = 1;
    const pos = this.positions([maxLen]);
    const factors = r0.type === 'longrope' ? [f32Tensor(Float32Array.from(r0.shortFactor ?? []), [r0.shortFactor?.length ?? 0]), f32Tensor(Float32Array.from(r0.longFactor ?? []), [r0.longFactor?.length ?? 0])] : [];
    const [r] = await this.native.runOp('rope', [f32Tensor(probe, [maxLen, 1, hd]), i32Tensor(pos, [maxLen]), ...factors], this.ropeParams(r0, maxLen));
    const rot = asF32(r);
    const cos = new Float32Array(maxLen * half);
    const sin = new Float32Array(maxLen * half);
    for (let p = 0; p < maxLen; p++) {
      for (let i = 0; i < half; i++) {
        cos[p * half + i] = rot[p * hd + i];
        sin[p * half + i] = rot[p * hd + i + half];
      }
    }
    t = { cos, sin, half };
    byLen.set(maxLen, t);
    return t;
  }

  async rope(x: Float32Array, heads: number, seqLens: readonly number[], r: RopeConfig = this.spec.rope): Promise<Float32Array> {
    const hd = this.spec.headDim;
    const { cos, sin, half } = await this.ropeTable(r, Math.max(...seqLens));
    const out = Float32Array.from(x);
    let t = 0;
    for (const L of seqLens) {
      for (let p = 0; p < L; p++, t++) {
        for (let h = 0; h < heads; h++) {
          const o = (t * heads + h) * hd;
          for (let i = 0; i < half; i++) {
            const c = cos[p * half + i];
            const s = sin[p * half + i];
            const x1 = x[o + i];
            const x2 = x[o + i + half];
            out[o + i] = x1 * c - x2 * s;
            out[o + i + half] = x2 * c + x1 * s;
          }
        }
      }
    }
    return out;
  }

  /** Causal GQA attention of each sequence over itself: q [tokens, heads*hd], k/v [tokens, kvHeads*hd] (k roped by
   *  `rope`; null: a NoPE layer); window > 0: each query sees its last `window` positions only (sliding-window layers).
   *  With spec.attnLogitSoftcap (Gemma 2) each scaled score x becomes c tanh(x / c) before the softmax (the op's
   *  `softcap`, as the native decoder does it). */
  async attention(
    q: Float32Array, k: Float32Array, v: Float32Array, seqLens: readonly number[], window = 0, rope: RopeConfig | null = this.spec.rope,
  ): Promise<Float32Array> {
    const { numHeads, numKvHeads, headDim: hd } = this.spec;
    const S = seqLens.length;
    const maxL = Math.max(...seqLens);
    const kvw = numKvHeads * hd;
    let kc = k;
    let vc = v;
    if (seqLens.some((L) => L !== maxL)) {
      kc = new Float32Array(S * maxL * kvw);
      vc = new Float32Array(S * maxL * kvw);
      let t = 0;
      for (let s = 0; s < S; s++) {
        kc.set(k.subarray(t * kvw, (t + seqLens[s]) * kvw), s * maxL * kvw);
        vc.set(v.subarray(t * kvw, (t + seqLens[s]) * kvw), s * maxL * kvw);
        t += seqLens[s];
      }
    }
    const tables = new Int32Array(S);
    const info = new Int32Array(S * 3);
    let start = 0;
    for (let s = 0; s < S; s++) {
      tables[s] = s;
      info[s * 3] = start;
      info[s * 3 + 1] = seqLens[s];
      info[s * 3 + 2] = seqLens[s];
      start += seqLens[s];
    }
    const [r] = await this.native.runOp(
      'attention',
      [
        f32Tensor(q, [start, numHeads, hd]),
        f32Tensor(kc, [S, maxL, numKvHeads, hd]),
        f32Tensor(vc, [S, maxL, numKvHeads, hd]),
        i32Tensor(tables, [S, 1]),
        i32Tensor(info, [S, 3]),
      ],
      // longrope / yarn: HF scales cos and sin by attentionFactor; on a fully rotated head that is the attention logits
      // times its square (on a partial one the rope op applied it: ops/rope.h)
      // (the softmax scale rides on the rope: Granite's attention_multiplier, Gemma's query_pre_attn_scalar^-0.5)
      {
        scale: (rope && this.scalesAttention(rope) ? (rope.attentionFactor ?? 1) ** 2 : 1) * ((rope ?? this.spec.rope).attentionScale ?? 1 / Math.sqrt(hd)),
        window,
        ...(this.spec.attnLogitSoftcap ? { softcap: this.spec.attnLogitSoftcap } : {}),
      },
    );
    return asF32(r);
  }

  async add(a: Float32Array, b: Float32Array): Promise<Float32Array> {
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
    return out;
  }

  /** act(gate) * up in f64 per element, as the calibration and search numbers were made: silu, or gelu_tanh (Gemma:
   *  0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))), transformers' gelu_pytorch_tanh). The native `silu_mul`
   *  (f32, vectorised exp) is ~14x faster with the copies (2048 x 1024: ~80 ms vs ~1.1 s here) but differs in the last
   *  f32 bits, which flips near-tied argmins of the AWQ search (awq-ppl: AWQ 224.47 -> 226.85 on tiny-qwen2-pydocs);
   *  this TypeScript path (`session: false`) keeps the f64 loop. The native AWQ session (awq-session.ts), which
   *  calibrate and auto_awq use by default, runs the native f32 silu_mul on both backends: on cuda the block is f16
   *  anyway, and the AWQ quality specs pass with it (README "GPU path"). */
  async actMul(gate: Float32Array, up: Float32Array): Promise<Float32Array> {
    const out = new Float32Array(gate.length);
    if (this.spec.hiddenAct === 'gelu') {  // exact (Gemma 1 configs' hidden_act "gelu")
      for (let i = 0; i < gate.length; i++) out[i] = 0.5 * gate[i] * (1 + erf(gate[i] / Math.SQRT2)) * up[i];
      return out;
    }
    if (this.spec.hiddenAct === 'gelu_tanh') {
      const c = Math.sqrt(2 / Math.PI);
      for (let i = 0; i < gate.length; i++) {
        const g = gate[i];
        out[i] = 0.5 * g * (1 + Math.tanh(c * (g + 0.044715 * g * g * g))) * up[i];
      }
      return out;
    }
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i];
      out[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
    return out;
  }

  /** The attention sub-block from its (normed) input to o's output, with optional replacement weights. */
  async attnBlock(
    layer: number, attnIn: Float32Array, seqLens: readonly number[],
    w: Partial<Record<'q' | 'k' | 'v' | 'o', Float32Array>> = {}, taps?: Partial<LayerTaps>,
  ): Promise<Float32Array> {
    const { numHeads, numKvHeads } = this.spec;
    const q0 = await this.linear(layer, 'q', attnIn, w.q);
    const k0 = await this.linear(layer, 'k', attnIn, w.k);
    const v = await this.linear(layer, 'v', attnIn, w.v);
    // Qwen3: every q / k head RMS-normed over headDim before RoPE (rows of headDim values)
    const qn = this.spec.qkNorm ? await this.rmsNorm(q0, this.w(`layers.${layer}.q_norm.weight`)) : q0;
    const kn = this.spec.qkNorm ? await this.rmsNorm(k0, this.w(`layers.${layer}.k_norm.weight`)) : k0;
    // (a NoPE layer, spec.noRopeLayers: q and k unrotated, softmax scale 1/sqrt(headDim))
    const rope = this.spec.noRopeLayers?.includes(layer) ? null : this.ropeOf(layer);
    const q = rope ? await this.rope(qn, numHeads, seqLens, rope) : qn;
    const k = rope ? await this.rope(kn, numKvHeads, seqLens, rope) : kn;
    const oIn = await this.attention(q, k, v, seqLens, this.spec.layerWindows?.[layer] ?? 0, rope);
    if (taps) Object.assign(taps, { k, v, oIn });
    return this.linear(layer, 'o', oIn, w.o);
  }

  /** The MLP sub-block from its (normed) input to down's output. */
  async mlpBlock(
    layer: number, mlpIn: Float32Array, w: Partial<Record<'gate' | 'up' | 'down', Float32Array>> = {}, taps?: Partial<LayerTaps>,
  ): Promise<Float32Array> {
    const g = await this.linear(layer, 'gate', mlpIn, w.gate);
    const u = await this.linear(layer, 'up', mlpIn, w.up);
    const downIn = await this.actMul(g, u);
    if (taps) taps.downIn = downIn;
    return this.linear(layer, 'down', downIn, w.down);
  }

  /**
   * A mixture-of-experts MLP from its (normed) input [tokens, hidden]: the router's softmax over all experts (f64), the
   * numExpertsPerTok largest logits (ties to the lower expert), their probabilities renormalized to sum 1 when
   * normTopkProb (Mixtral always), and the weighted sum of the chosen experts' SwiGLU outputs: the CPU decoder's rule
   * (Decoder::moe_mlp). `w` replaces weights by layer-relative name (`experts.{e}.gate`, ...); the routing always uses
   * the layer's router. Fills taps.experts.
   */
  async moeBlock(layer: number, mlpIn: Float32Array, w: Record<string, Float32Array> = {}, taps?: Partial<LayerTaps>): Promise<Float32Array> {
    const H = this.spec.hiddenSize, E = this.spec.numExperts!, K = this.spec.numExpertsPerTok!;
    const renorm = this.spec.normTopkProb ?? true;
    const T = mlpIn.length / H;
    const logits = await this.linear(layer, 'router', mlpIn);
    const rows: number[][] = Array.from({ length: E }, () => []);
    const weights: number[][] = Array.from({ length: E }, () => []);
    const order = new Array<number>(E);
    const p = new Float64Array(E);
    for (let t = 0; t < T; t++) {
      const r = logits.subarray(t * E, (t + 1) * E);
      let mx = -Infinity;
      for (let e = 0; e < E; e++) mx = Math.max(mx, r[e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += p[e] = Math.exp(r[e] - mx);
      for (let e = 0; e < E; e++) order[e] = e;
      order.sort((a, b) => (r[b] - r[a]) || (a - b));
      let top = 0;
      for (let k = 0; k < K; k++) top += p[order[k]];
      for (let k = 0; k < K; k++) {
        const e = order[k];
        rows[e].push(t);
        weights[e].push(Math.fround(p[e] / (renorm ? top : sum)));
      }
    }
    const out = new Float32Array(T * H);
    const experts: ExpertTaps[] = [];
    for (let e = 0; e < E; e++) {
      const n = rows[e].length;
      const tokens = Int32Array.from(rows[e]);
      if (n === 0) {
        experts.push({ tokens, downIn: new Float32Array(0) });
        continue;
      }
      const xe = gatherRows(mlpIn, H, tokens);
      const x = `experts.${e}`;
      const g = await this.linear(layer, `${x}.gate`, xe, w[`${x}.gate`]);
      const u = await this.linear(layer, `${x}.up`, xe, w[`${x}.up`]);
      const downIn = await this.actMul(g, u);
      experts.push({ tokens, downIn });
      const y = await this.linear(layer, `${x}.down`, downIn, w[`${x}.down`]);
      for (let i = 0; i < n; i++) {
        const o = rows[e][i] * H, wt = weights[e][i];
        for (let j = 0; j < H; j++) out[o + j] += wt * y[i * H + j];
      }
    }
    if (taps) taps.experts = experts;
    return out;
  }

  /** The MLP of layer i (dense or mixture of experts) from its normed input; `w` by layer-relative linear name. */
  async mlpOf(layer: number, mlpIn: Float32Array, w: Record<string, Float32Array> = {}, taps?: Partial<LayerTaps>): Promise<Float32Array> {
    return this.isMoeLayer(layer) ? this.moeBlock(layer, mlpIn, w, taps) : this.mlpBlock(layer, mlpIn, w, taps);
  }

  /** One decoder layer: x → h = x + attn(norm(x)) → h + mlp(norm(h)); with sandwich norms (Gemma) each branch's
   *  output is RMS-normed (attn_out_norm, mlp_out_norm) before its residual add. Fills `taps` when given. */
  async layer(i: number, x: Float32Array, seqLens: readonly number[], taps?: Partial<LayerTaps>): Promise<Float32Array> {
    const outNorm = async (y: Float32Array, norm: string) => (this.spec.sandwichNorms ? this.rmsNorm(y, this.w(`layers.${i}.${norm}.weight`)) : y);
    const attnIn = await this.rmsNorm(x, this.w(`layers.${i}.input_norm.weight`));
    const attnOut = await outNorm(await this.attnBlock(i, attnIn, seqLens, {}, taps), 'attn_out_norm');
    const h = await this.add(x, attnOut);
    const mlpIn = await this.rmsNorm(h, this.w(`layers.${i}.post_norm.weight`));
    const mlpOut = await outNorm(await this.mlpOf(i, mlpIn, {}, taps), 'mlp_out_norm');
    if (taps) Object.assign(taps, { attnIn, mlpIn });
    return this.add(h, mlpOut);
  }

  /** Final norm and LM head (a tied head reads the embedding table itself, unscaled): logits [tokens, vocab]; with
   *  spec.finalLogitSoftcap (Gemma 2) each logit x becomes d tanh(x / d), as the native decoder does it. */
  async head(x: Float32Array): Promise<Float32Array> {
    const hn = await this.rmsNorm(x, this.w('norm.weight'));
    const lm = this.weights.get('lm_head.weight') ?? this.w('embed_tokens.weight');
    const logits = await this.linearWith(hn, lm, this.spec.vocabSize, this.spec.hiddenSize);
    const d = this.spec.finalLogitSoftcap;
    if (d) for (let i = 0; i < logits.length; i++) logits[i] = d * Math.tanh(logits[i] / d);
    return logits;
  }

  /** Full forward of the given sequences: logits [sum(seqLens), vocab]. */
  async forward(ids: Int32Array, seqLens: readonly number[] = [ids.length]): Promise<Float32Array> {
    let x = await this.embed(ids);
    for (let i = 0; i < this.spec.numLayers; i++) x = await this.layer(i, x, seqLens);
    return this.head(x);
  }
}
