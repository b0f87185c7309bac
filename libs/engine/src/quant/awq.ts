// lite auto_awq: activation-aware weight quantization (AWQ, Lin et al. 2023), layer by layer on real block inputs.
//
// For each decoder layer, on the hidden states that reach it (the previous layers already quantized):
//  1. scale search, per scaling group the architecture declares (input_norm → q/k/v, v → o, post_norm → gate/up,
//     up → down): for alpha in {0, 1/20, ..., 19/20}: s = mean|x|^alpha (normalised by sqrt(max s * min s)),
//     W' = Q(W diag(s)) diag(s)^-1, loss = MSE of the module's real output (the attention block for q/k/v, o for v → o,
//     the MLP for gate/up, down for up → down) against fp16; the best s is folded: the producer (norm weight, or the
//     previous linear's rows and bias) is divided by s and the consumers' columns multiplied by s. v → o is skipped
//     when v and o differ in shape (grouped-query attention), as the AWQ authors do.
//  2. clip search, per linear except q and k (their error shows only through the attention scores): per output row
//     and input group, shrink max|w| to (1 - i/20) of itself for i < 10 and keep the clip that minimises the error of
//     that group's partial output on a token subsample.
//  3. round to nearest with the chosen clip; the layer's output with quantized weights feeds the next layer.
// searchScale: false and searchClip: false give plain round-to-nearest (RTN).
// The result is an AutoAWQ GEMM checkpoint (see autoawq.ts) written into `dstDir` (default: workDir).
// The search works on the canonical tensors as they load, what an architecture folds into them included (Granite's
// multipliers: TensorSource.scale; Gemma's 1 + w norms: TensorSource.add), so it sees the model's real function; the
// writer takes the folds back out. A Gemma model's layers (sandwich norms, gelu_tanh) run in TypeScript: the scaling
// groups are the same four (input_norm = input_layernorm, post_norm = pre_feedforward_layernorm), the losses measured
// before the sandwich norms, as AutoAWQ does.
import { InvalidArgumentError, QuantConfigError } from '../errors';
import { f16BitsToF32, f32ToF16Bits } from '../io/half';
import type { LoadOptions } from '../generation/types';
import { BlockForward, gatherRows, LINEARS, type LayerTaps, type LinearName, type TapName } from './block-forward';
import { batches, calibrate, concatIds, hasCalibration, LINEAR_INPUT, loadCalibration, resolveNative, type CalibrationResult, type ProgressFn } from './calibrate';
import { checkGroupDivides, checkQuantParams, type QuantizedLinear } from './pack';
import { fakeQuantNative, NativeChannelStats, quantizeLinearNative } from './native-quant';
import { packedTargets, roundAsWritten, writeAutoAwqDir } from './autoawq';
import { createLayerSession, setLayerTensors, subsampleIndices, tapMean, useSession } from './awq-session';
import type { AwqTapName, NativeAwqSession, TensorSource } from '../native';

export interface AutoAwqOptions extends Pick<LoadOptions, 'backend' | 'native' | 'log'> {
  /** Weight bits: 4 (the AutoAWQ GEMM layout holds 4-bit weights only). */
  wBits?: number;
  /** Weights per group along the input dimension: 32, 64 or 128 (default 128). */
  wGroupSize?: number;
  /** Calibration results are read from (or, when absent, written to) this folder. */
  workDir: string;
  /** Where the AutoAWQ checkpoint goes (default: workDir, as LMDeploy does). */
  dstDir?: string;
  searchScale?: boolean;
  searchClip?: boolean;
  /** Used only when workDir has no calibration yet. */
  calibDataset?: string;
  calibSamples?: number;
  calibSeqlen?: number;
  /** Calibration samples carried through the layers for the searches (default: all, at most 8). */
  searchSamples?: number;
  /** Tokens the scale search measures each module on (default 2048): whole samples for the attention block, a strided
   *  token subsample of all carried samples for the others. */
  searchTokens?: number;
  /** Tokens subsampled for the clip search (default 512). */
  clipTokens?: number;
  /** Grid points of the scale search (default 20). */
  nGrid?: number;
  /** Run the layer work through the native per-layer session (awq-session.ts; default: when the native module has
   *  it). false: the TypeScript path over BlockForward. */
  session?: boolean;
  onProgress?: ProgressFn;
}

export interface LayerReport {
  layer: number;
  /** Best alpha per scaling group (undefined: skipped). */
  alphas: Record<string, number | undefined>;
  /** Loss of the best scale relative to alpha = 0 (plain RTN) per group. */
  lossRatio: Record<string, number>;
}

export interface AutoAwqResult {
  dstDir: string;
  wBits: 4;
  wGroupSize: number;
  searchScale: boolean;
  searchClip: boolean;
  layers: LayerReport[];
  seconds: number;
}

/** A scaling group: the producer divided by s, its consumers' columns multiplied by s (linears by layer-relative
 *  name). `alsoScaled`: consumers scaled alike but not quantized (a mixture of experts' router). `expert`: the input
 *  is that expert's down input (its tokens only) instead of the tap `input`. */
interface Group {
  key: string;
  prev: { kind: 'norm'; name: string } | { kind: 'linear'; name: string };
  linears: string[];
  alsoScaled?: string[];
  input: TapName;
  expert?: number;
}

const GROUPS: Group[] = [
  { key: 'input_norm→qkv', prev: { kind: 'norm', name: 'input_norm' }, linears: ['q', 'k', 'v'], input: 'attnIn' },
  { key: 'v→o', prev: { kind: 'linear', name: 'v' }, linears: ['o'], input: 'oIn' },
  { key: 'post_norm→gate,up', prev: { kind: 'norm', name: 'post_norm' }, linears: ['gate', 'up'], input: 'mlpIn' },
  { key: 'up→down', prev: { kind: 'linear', name: 'up' }, linears: ['down'], input: 'downIn' },
];

/**
 * The scaling groups of layer i. A mixture-of-experts layer (as AutoAWQ scales Mixtral's block): the attention's two,
 * then post_norm → every expert's gate and up together (their common input; the router, which reads it too, has its
 * columns scaled alike and stays fp16), and per expert its up → down on the tokens routed to it.
 */
function layerGroups(fwd: BlockForward, i: number): Group[] {
  if (!fwd.isMoeLayer(i)) return GROUPS;
  const experts = Array.from({ length: fwd.spec.numExperts! }, (_, e) => e);
  return [
    GROUPS[0], GROUPS[1],
    { key: 'post_norm→experts', prev: { kind: 'norm', name: 'post_norm' }, linears: experts.flatMap((e) => [`experts.${e}.gate`, `experts.${e}.up`]), alsoScaled: ['router'], input: 'mlpIn' },
    ...experts.map((e): Group => ({ key: `experts.${e}.up→down`, prev: { kind: 'linear', name: `experts.${e}.up` }, linears: [`experts.${e}.down`], input: 'downIn', expert: e })),
  ];
}

/** A group's input activations [tokens, width]. */
function groupInput(taps: Partial<LayerTaps>, g: Group): Float32Array {
  return g.expert !== undefined ? taps.experts![g.expert].downIn : (taps[g.input] as Float32Array);
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s / a.length;
}

/** mean |x| per input channel of x [rows, dim] (native channel_stats; f64 sums, as the TS loop it replaced). */
async function meanAbsPerChannel(fwd: BlockForward, x: Float32Array, dim: number): Promise<Float32Array> {
  const st = new NativeChannelStats(fwd.native, dim);
  await st.add(x);
  return st.absmean();
}

function scaleColumns(w: Float32Array, out: number, inp: number, s: Float32Array): Float32Array {
  const r = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) r[o * inp + i] = w[o * inp + i] * s[i];
  return r;
}

function divideChannels(x: Float32Array, dim: number, s: Float32Array): Float32Array {
  const r = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) r[i] = x[i] / s[i % dim];
  return r;
}

const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/** Rows of x evenly strided down to at most n rows. */
// v -> o is scaled only where v and o have the same shape (MHA: KV width = hidden = q width), as AutoAWQ does.
function groupScalable(fwd: BlockForward, key: string): boolean {
  if (key !== 'v→o') return true;
  const [vo, vi] = fwd.linearShape('v');
  const [oo, oi] = fwd.linearShape('o');
  return vo === oo && vi === oi;
}

function subsampleRows(x: Float32Array, dim: number, n: number): Float32Array {
  const rows = x.length / dim;
  if (rows <= n) return x;
  const out = new Float32Array(n * dim);
  const step = rows / n;
  for (let r = 0; r < n; r++) out.set(x.subarray(Math.floor(r * step) * dim, (Math.floor(r * step) + 1) * dim), r * dim);
  return out;
}

export async function autoAwq(modelDir: string, opts: AutoAwqOptions): Promise<AutoAwqResult> {
  const t0 = Date.now();
  const wBits = opts.wBits ?? 4;
  const groupSize = opts.wGroupSize ?? 128;
  checkQuantParams(wBits, groupSize);
  if (wBits !== 4) throw new QuantConfigError(`auto_awq writes the AutoAWQ GEMM layout, which holds 4-bit weights only; got --w-bits ${wBits}`);
  if (!opts.workDir) throw new InvalidArgumentError('workDir is required');
  const searchScale = opts.searchScale ?? true;
  const searchClip = opts.searchClip ?? true;
  const nGrid = opts.nGrid ?? 20;
  const progress = opts.onProgress ?? (() => {});
  const log = opts.log ?? (() => {});
  const native = await resolveNative(opts);
  const { fwd, loaded, sources } = BlockForward.fromDir(native, modelDir);
  const byName = new Map(sources.map((s) => [s.name, s]));
  const spec = fwd.spec;
  // Every linear must split into whole groups: fail before any work.
  const checked = new Set<string>();
  for (let i = 0; i < spec.numLayers; i++) {
    for (const l of quantizedLinears(fwd, i)) {
      const generic = l.replace(/^experts\.\d+\./, 'experts.*.');
      if (checked.has(generic)) continue;
      checked.add(generic);
      const [out, inp] = fwd.linearShape(l);
      const width = /down$/.test(l) ? (l === 'down' ? 'intermediate_size' : 'moe_intermediate_size') : l === 'o' ? 'attention' : 'hidden';
      checkGroupDivides(`layers.*.${generic} (${width} width)`, out, inp, groupSize);
      if (out % 8 !== 0) throw new QuantConfigError(`layers.*.${generic}: out_features ${out} is not a multiple of 8 (AutoAWQ packs 8 columns per int32)`);
    }
  }
  packedTargets(loaded, sources); // every re-laid-out tensor (InternLM2's split wqkv) must pack back: fail before any work

  // Plain round-to-nearest needs no activations: no calibration, no forward passes.
  const needData = searchScale || searchClip;
  // the native session runs Llama-style dense layers only: a mixture of experts or Gemma takes the TypeScript path
  const viaSession = useSession(native, spec, opts.session, 'auto_awq', needData ? log : undefined) && needData;
  let calib: CalibrationResult | undefined;
  let base = 0;
  const expect = { numLayers: spec.numLayers, hiddenSize: spec.hiddenSize, intermediateSize: spec.intermediateSize };
  if (!needData) {
    progress(0, 'round-to-nearest: no calibration needed');
  } else if (hasCalibration(opts.workDir)) {
    calib = loadCalibration(opts.workDir, expect);
    progress(0, `using the calibration in ${opts.workDir} (${calib.manifest.samples} x ${calib.manifest.seqlen} tokens)`);
  } else {
    if (!opts.calibDataset) throw new InvalidArgumentError(`${opts.workDir} holds no calibration: pass calibDataset (or run calibrate first)`);
    calib = await calibrate(modelDir, {
      dataset: opts.calibDataset, samples: opts.calibSamples, seqlen: opts.calibSeqlen, workDir: opts.workDir, native, log,
      onProgress: (f, m) => progress(0.2 * f, `calibrate: ${m}`),
    });
    base = 0.2;
  }
  const samples = calib ? calib.samples.slice(0, Math.min(calib.samples.length, opts.searchSamples ?? 8)) : [new Int32Array(1)];
  const searchTokens = opts.searchTokens ?? 2048;
  const clipTokens = opts.clipTokens ?? 512;
  const batchList = batches(samples, 1 << 30); // one batch: the search needs all tokens of a layer at once
  const seqLens = batchList[0].map((s) => s.length);
  let x = needData ? await fwd.embed(concatIds(batchList[0])) : new Float32Array(0);

  const quantized = new Map<string, QuantizedLinear>();
  const reports: LayerReport[] = [];
  const search: SearchParams = { wBits, groupSize, nGrid, searchTokens, clipTokens, searchScale, searchClip };
  const session = viaSession ? createLayerSession(fwd) : undefined;
  if (session) {
    try {
      await session.setInput(x, Int32Array.from(seqLens));
      x = new Float32Array(0);
      for (let i = 0; i < spec.numLayers; i++) {
        const report = await sessionLayer(fwd, session, i, seqLens, search, quantized, byName);
        reports.push(report);
        if (searchScale) log('info', `layer ${i}: best alpha per group ${JSON.stringify(report.alphas)}`);
        progress(base + ((1 - base) * 0.95 * (i + 1)) / spec.numLayers, `layer ${i + 1}/${spec.numLayers} quantized`);
      }
    } finally {
      session.dispose();
    }
  }
  for (let i = 0; i < (session ? 0 : spec.numLayers); i++) {
    const lp = `layers.${i}`;
    const report: LayerReport = { layer: i, alphas: {}, lossRatio: {} };
    const taps: Partial<LayerTaps> = {};
    if (needData) await fwd.layer(i, x, seqLens, taps);

    // 1. scale search on the fp16 layer
    const groups = layerGroups(fwd, i);
    const scales = new Map<string, Float32Array>();
    if (searchScale) {
      for (const g of groups) {
        const full = needData ? groupInput(taps, g) : new Float32Array(0);
        if (!groupScalable(fwd, g.key) || full.length === 0) {  // (an expert no search token was routed to)
          report.alphas[g.key] = undefined;
          continue;
        }
        const dim = fwd.linearShape(g.linears[0])[1];
        const xMean = await meanAbsPerChannel(fwd, full, dim);
        const attnLens = seqLens.slice(0, attnSeqCount(seqLens, searchTokens));
        const inp = g.key === 'input_norm→qkv'
          ? full.subarray(0, attnLens.reduce((a, b) => a + b, 0) * dim)
          : subsampleRows(full, dim, searchTokens);
        const run = async (w: Record<string, Float32Array>): Promise<Float32Array> => {
          switch (g.key) {
            case 'input_norm→qkv': return fwd.attnBlock(i, inp, attnLens, w);
            case 'post_norm→gate,up':
            case 'post_norm→experts': return fwd.mlpOf(i, inp, w);
            default: return fwd.linear(i, g.linears[0], inp, w[g.linears[0]]);
          }
        };
        const ref = await run({});
        let best = { loss: Infinity, alpha: 0, s: new Float32Array(dim).fill(1) };
        let rtnLoss = Infinity;
        const cands = scaleCandidates(xMean, nGrid);
        for (let n = 0; n < nGrid; n++) {
          const alpha = n / nGrid;
          const s = cands.slice(n * dim, (n + 1) * dim);
          const w: Record<string, Float32Array> = {};
          for (const l of g.linears) {
            // Q(W diag(s)) diag(s)^-1 in one native pass (bit-identical to the TS quantizeLinear path)
            const [out, inD] = fwd.linearShape(l);
            w[l] = await fakeQuantNative(fwd.native, fwd.w(`${lp}.${l}.weight`), out, inD, wBits, groupSize, { scale: s });
          }
          const loss = mse(await run(w), ref);
          if (n === 0) rtnLoss = loss;
          if (loss < best.loss) best = { loss, alpha, s };
        }
        report.alphas[g.key] = best.alpha;
        report.lossRatio[g.key] = rtnLoss > 0 ? best.loss / rtnLoss : 1;
        scales.set(g.key, best.s);
      }
      // fold the scales into the weights, and the taps the clip search reads: x / s
      foldScales(fwd, lp, scales, byName, groups);
      for (const g of groups) {
        const s = scales.get(g.key);
        if (!s) continue;
        const x = divideChannels(groupInput(taps, g), fwd.linearShape(g.linears[0])[1], s);
        if (g.expert !== undefined) taps.experts![g.expert].downIn = x;
        else taps[g.input] = x;
      }
    }

    // 2. clip search (on the scaled weights and inputs), 3. round to nearest
    for (const l of quantizedLinears(fwd, i)) {
      const [out, inp] = fwd.linearShape(l);
      const w = fwd.w(`${lp}.${l}.weight`);
      let clip: Float32Array | undefined;
      if (searchClip && l !== 'q' && l !== 'k') {
        const xin = subsampleRows(linearInput(taps, l, inp), inp, clipTokens);
        if (xin.length > 0) clip = await searchClipForLinear(fwd, w, out, inp, xin, wBits, groupSize);
      }
      const { ql, dequantized } = await quantizeLinearNative(fwd.native, w, out, inp, wBits, groupSize, clip);
      quantized.set(`${lp}.${l}`, ql);
      fwd.weights.set(`${lp}.${l}.weight`, dequantized);
    }
    reports.push(report);
    if (searchScale) log('info', `layer ${i}: best alpha per group ${JSON.stringify(report.alphas)}`);
    // the quantized layer's output feeds the next layer
    if (needData) x = await fwd.layer(i, x, seqLens);
    progress(base + ((1 - base) * 0.95 * (i + 1)) / spec.numLayers, `layer ${i + 1}/${spec.numLayers} quantized`);
  }

  const dstDir = opts.dstDir ?? opts.workDir;
  await writeAutoAwqDir(loaded, sources, fwd.weights, quantized, { dstDir, groupSize });
  progress(1, `AutoAWQ checkpoint written to ${dstDir}`);
  return { dstDir, wBits: 4, wGroupSize: groupSize, searchScale, searchClip, layers: reports, seconds: (Date.now() - t0) / 1000 };
}

interface SearchParams {
  wBits: number;
  groupSize: number;
  nGrid: number;
  searchTokens: number;
  clipTokens: number;
  searchScale: boolean;
  searchClip: boolean;
}

const GROUP_TAP: Record<string, AwqTapName> = { 'input_norm→qkv': 'attnIn', 'v→o': 'oIn', 'post_norm→gate,up': 'mlpIn', 'up→down': 'downIn' };

/** The scale candidates of the grid for mean |x| per channel: [nGrid, dim], row n = alpha n / nGrid. */
export function scaleCandidates(xMean: Float32Array, nGrid: number): Float32Array {
  const dim = xMean.length;
  const out = new Float32Array(nGrid * dim);
  for (let n = 0; n < nGrid; n++) {
    const alpha = n / nGrid;
    const s = out.subarray(n * dim, (n + 1) * dim);
    let mx = 0;
    let mn = Infinity;
    for (let c = 0; c < dim; c++) {
      s[c] = Math.max(Math.pow(xMean[c], alpha), 1e-4);
      mx = Math.max(mx, s[c]);
      mn = Math.min(mn, s[c]);
    }
    const norm = Math.sqrt(mx * mn);
    for (let c = 0; c < dim; c++) s[c] /= norm;
  }
  return out;
}

/** Attention needs whole sequences: how many of the first samples fit in `searchTokens` (at least one); the other
 *  modules act per token and take a strided row subsample. */
function attnSeqCount(seqLens: readonly number[], searchTokens: number): number {
  let n = 0;
  for (let t = 0; n < seqLens.length && (n === 0 || t + seqLens[n] <= searchTokens); n++) t += seqLens[n];
  return n;
}

/** The linears of layer i that are quantized: every one but a mixture of experts' router. */
function quantizedLinears(fwd: BlockForward, i: number): string[] {
  return fwd.layerLinears(i).filter((l) => l !== 'router');
}

/** A linear's input activations [tokens, inp] from the layer's taps (an expert's gate / up: its tokens' rows of mlpIn). */
function linearInput(taps: Partial<LayerTaps>, l: string, inp: number): Float32Array {
  const ex = /^experts\.(\d+)\.(gate|up|down)$/.exec(l);
  if (ex) {
    const t = taps.experts![Number(ex[1])];
    return ex[2] === 'down' ? t.downIn : gatherRows(taps.mlpIn!, inp, t.tokens);
  }
  return taps[LINEAR_INPUT[l as LinearName]]!;
}

/** Folds the chosen scales of layer `lp` into fwd.weights (producer / s, consumers' columns * s; the producers stored
 *  in the model's dtype, and consumers kept unquantized such as a router, are rounded as they will be written and read
 *  back: with their sources' folds, so a Gemma norm 1 + w becomes 1 + round((1 + w) / s - 1)); returns the names of the
 *  session tensors that changed. */
function foldScales(
  fwd: BlockForward, lp: string, scales: Map<string, Float32Array>, sources: ReadonlyMap<string, TensorSource>, groups: Group[] = GROUPS,
): string[] {
  const changed = new Set<string>();
  const setWritten = (name: string, v: Float32Array) => fwd.weights.set(name, roundAsWritten(v, sources.get(name), fwd.spec.dtype));
  for (const g of groups) {
    const s = scales.get(g.key);
    if (!s) continue;
    if (g.prev.kind === 'norm') {
      const name = `${lp}.${g.prev.name}.weight`;
      setWritten(name, fwd.w(name).map((v, c) => v / s[c]));
      changed.add(g.prev.name);
    } else {
      const [out, inD] = fwd.linearShape(g.prev.name);
      const pw = fwd.w(`${lp}.${g.prev.name}.weight`);
      const r = new Float32Array(pw.length);
      for (let o = 0; o < out; o++) for (let c = 0; c < inD; c++) r[o * inD + c] = pw[o * inD + c] / s[o];
      fwd.weights.set(`${lp}.${g.prev.name}.weight`, r);
      const b = fwd.weights.get(`${lp}.${g.prev.name}.bias`);
      if (b) setWritten(`${lp}.${g.prev.name}.bias`, b.map((v, o) => v / s[o]));
      changed.add(g.prev.name);
    }
    for (const l of g.linears) {
      const [out, inD] = fwd.linearShape(l);
      fwd.weights.set(`${lp}.${l}.weight`, scaleColumns(fwd.w(`${lp}.${l}.weight`), out, inD, s));
      changed.add(l);
    }
    for (const l of g.alsoScaled ?? []) {
      const [out, inD] = fwd.linearShape(l);
      setWritten(`${lp}.${l}.weight`, scaleColumns(fwd.w(`${lp}.${l}.weight`), out, inD, s));
      changed.add(l);
    }
  }
  return [...changed];
}

/**
 * One layer of the search through the native session (its input is the layer input of the search samples): scale
 * search on the fp16 layer (losses of every candidate from the session), folding here, clip search in the session,
 * round to nearest here (native awq_fake_quant), then the quantized layer's output becomes the next input.
 */
async function sessionLayer(
  fwd: BlockForward, sess: NativeAwqSession, i: number, seqLens: number[], p: SearchParams, quantized: Map<string, QuantizedLinear>,
  sources: ReadonlyMap<string, TensorSource>,
): Promise<LayerReport> {
  const lp = `layers.${i}`;
  const report: LayerReport = { layer: i, alphas: {}, lossRatio: {} };
  await setLayerTensors(sess, fwd, i);
  const st = (await sess.run({ stats: p.searchScale, taps: true }))!;
  const tokens = seqLens.reduce((a, b) => a + b, 0);
  if (p.searchScale) {
    const scales = new Map<string, Float32Array>();
    for (const [gi, g] of GROUPS.entries()) {
      if (!groupScalable(fwd, g.key)) {
        report.alphas[g.key] = undefined;
        continue;
      }
      const dim = fwd.linearShape(g.linears[0])[1];
      const xMean = tapMean(st[GROUP_TAP[g.key]]);
      const cands = scaleCandidates(xMean, p.nGrid);
      const losses = await sess.scaleLosses(gi, cands, gi === 0
        ? { seqs: attnSeqCount(seqLens, p.searchTokens), bits: p.wBits, groupSize: p.groupSize }
        : { rows: subsampleIndices(tokens, p.searchTokens), bits: p.wBits, groupSize: p.groupSize });
      let best = 0;
      for (let n = 1; n < losses.length; n++) if (losses[n] < losses[best]) best = n;
      report.alphas[g.key] = best / p.nGrid;
      report.lossRatio[g.key] = losses[0] > 0 ? losses[best] / losses[0] : 1;
      scales.set(g.key, cands.slice(best * dim, (best + 1) * dim));
    }
    const changed = foldScales(fwd, lp, scales, sources);
    if (changed.length) {
      await setLayerTensors(sess, fwd, i, changed);
      // the clip search reads the scaled layer's inputs
      if (p.searchClip) await sess.run({ taps: true });
    }
  }
  for (const l of LINEARS) {
    const [out, inp] = fwd.linearShape(l);
    let clip: Float32Array | undefined;
    if (p.searchClip && l !== 'q' && l !== 'k') {
      clip = (await sess.clipSearch(l, subsampleIndices(tokens, p.clipTokens), { bits: p.wBits, groupSize: p.groupSize, nGrid: 20, maxShrink: 0.5 })).clip;
    }
    // the codes come back, with their AutoAWQ packing done natively; the session keeps the dequantized weight
    // (fwd.weights keeps the scaled fp one: the writer takes linears from `quantized` only)
    const { q, zeros, scales, gemm } = await sess.quantize(l, clip, { bits: p.wBits, groupSize: p.groupSize, pack: p.wBits === 4 });
    quantized.set(`${lp}.${l}`, { out, in: inp, bits: p.wBits as 4, groupSize: p.groupSize, q, zeros, scales, gemm });
  }
  // the quantized layer's output feeds the next layer
  await sess.run({ advance: true });
  return report;
}

/**
 * AWQ's weight clipping: per output row and input group, the max |w| (shrunk by 0..45%) whose quantized partial
 * output x_g · (Q(clip(w_g)) - w_g) has the smallest mean square over the token subsample `x` [tokens, inp].
 */
export async function searchClipForLinear(
  fwd: BlockForward, w: Float32Array, out: number, inp: number, x: Float32Array, bits: number, groupSize: number,
  nGrid = 20, maxShrink = 0.5,
): Promise<Float32Array> {
  const groups = inp / groupSize;
  const tokens = x.length / inp;
  const qmax = (1 << bits) - 1;
  const best = new Float32Array(out * groups);
  const bestErr = new Float64Array(out * groups).fill(Infinity);
  const orgMax = new Float32Array(out * groups);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      let m = 0;
      for (let k = 0; k < groupSize; k++) m = Math.max(m, Math.abs(w[o * inp + g * groupSize + k]));
      orgMax[o * groups + g] = m;
    }
  }
  for (let g = 0; g < groups; g++) {
    const xg = new Float32Array(tokens * groupSize);
    for (let t = 0; t < tokens; t++) xg.set(x.subarray(t * inp + g * groupSize, t * inp + (g + 1) * groupSize), t * groupSize);
    for (let step = 0; step < Math.round(maxShrink * nGrid); step++) {
      const d = new Float32Array(out * groupSize);
      for (let o = 0; o < out; o++) {
        const c = orgMax[o * groups + g] * (1 - step / nGrid);
        const base = o * inp + g * groupSize;
        let mn = Infinity;
        let mx = -Infinity;
        for (let k = 0; k < groupSize; k++) {
          const v = Math.min(c, Math.max(-c, w[base + k]));
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        const s = roundF16(Math.max(mx - mn, 1e-5) / qmax) || 6.103515625e-5;
        const z = Math.min(qmax, Math.max(0, Math.round(-mn / s)));
        for (let k = 0; k < groupSize; k++) {
          const v = Math.min(c, Math.max(-c, w[base + k]));
          const q = Math.min(qmax, Math.max(0, Math.round(v / s) + z));
          d[o * groupSize + k] = (q - z) * s - w[base + k];
        }
      }
      const e = await fwd.linearWith(xg, d, out, groupSize);
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let t = 0; t < tokens; t++) {
          const v = e[t * out + o];
          s += v * v;
        }
        if (s < bestErr[o * groups + g]) {
          bestErr[o * groups + g] = s;
          best[o * groups + g] = orgMax[o * groups + g] * (1 - step / nGrid);
        }
      }
    }
  }
  return best;
}
