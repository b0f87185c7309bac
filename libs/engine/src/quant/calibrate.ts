// lite calibrate: run the fp16 model over calibration samples and record, per decoder layer, the statistics that
// quantization needs (LMDeploy's lite/apis/calibrate.py): for the input of every linear, per input channel:
// absmax, mean |x|, min, max; for K and V, per KV head: min, max, absmax. Saved in workDir as
// calib_stats.safetensors (f32 tensors `layers.{i}.{linear}.{absmax|absmean|min|max}` per input channel,
// `layers.{i}.{k_cache|v_cache}.{min|max|absmax}` per KV head),
// calib_inputs.safetensors (the token ids of the samples, I32 [samples, seqlen], so auto_awq reuses them) and
// calib_manifest.json. All three appear together or not at all.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, ModelFormatError } from '../errors';
import { selectBackend } from '../generation/backend';
import type { LoadOptions } from '../generation/types';
import { readJson } from '../io/json';
import { readSafetensorsHeader, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import type { NativeModule } from '../native';
import { Tokenizer } from '../tokenizer/tokenizer';
import { BlockForward, LINEARS, type LayerTaps, type LinearName, type TapName } from './block-forward';
import { calibDatasetLabel, readCalibText } from './datasets';
import { NativeChannelStats } from './native-quant';
import { f32Bytes, writeFilesAtomically } from './files';
import { createLayerSession, setLayerTensors, tapMean, useSession } from './awq-session';

export type ProgressFn = (fraction: number, message: string) => void;

export interface CalibrateOptions extends Pick<LoadOptions, 'backend' | 'native' | 'log'> {
  /**
   * A built-in dataset name (`BUILTIN_CALIB_DATASETS`, e.g. `cmake-docs`), a .txt file (the whole text, cut into
   * windows) or a .jsonl file with a "text" field per line (either may be gzipped).
   */
  dataset: string;
  /** Number of windows of `seqlen` tokens (default 128). */
  samples?: number;
  /** Tokens per sample (default 2048). */
  seqlen?: number;
  workDir: string;
  /** Tokens per forward batch (default 4096). */
  batchTokens?: number;
  /** Layer by layer through the native per-layer session (awq-session.ts: every sample's hidden states stay in
   *  backend memory, each layer's weights are uploaded once); default: when the native module has it. false: batch
   *  by batch over BlockForward in TypeScript. */
  session?: boolean;
  onProgress?: ProgressFn;
}

export const CALIB_MANIFEST = 'calib_manifest.json';
export const CALIB_STATS = 'calib_stats.safetensors';
export const CALIB_INPUTS = 'calib_inputs.safetensors';
export const CALIB_FORMAT = 'lmfleet-calib-v1';

export interface CalibManifest {
  format: typeof CALIB_FORMAT;
  model: string;
  architecture: string;
  dataset: string;
  samples: number;
  seqlen: number;
  tokens: number;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numKvHeads: number;
  /** A mixture of experts: its layers hold `router` (the input of the router and of every expert's gate / up) and
   *  `experts.{e}.down` statistics instead of gate / up / down. */
  numExperts?: number;
  moeIntermediateSize?: number;
  createdAt: string;
  stats: string;
  inputs: string;
}

export interface ChannelStats {
  absmax: Float32Array;
  absmean: Float32Array;
  min: Float32Array;
  max: Float32Array;
}

export interface CalibrationResult {
  manifest: CalibManifest;
  /** `layers.{i}.{linear}` → per-input-channel stats. */
  inputs: Map<string, ChannelStats>;
  /** `layers.{i}.{k_cache|v_cache}` → per-KV-head min/max/absmax. */
  kv: Map<string, { min: Float32Array; max: Float32Array; absmax: Float32Array }>;
  /** Token ids of the samples, one Int32Array per sample. */
  samples: Int32Array[];
}

/** Cuts token ids into the first `samples` non-overlapping windows of `seqlen` tokens. */
export function calibWindows(ids: ArrayLike<number>, samples: number, seqlen: number): Int32Array[] {
  const n = Math.min(samples, Math.floor(ids.length / seqlen));
  const out: Int32Array[] = [];
  for (let w = 0; w < n; w++) out.push(Int32Array.from(Array.prototype.slice.call(ids, w * seqlen, (w + 1) * seqlen)));
  return out;
}

/** The linears of a layer whose inputs calibrate records: every dense linear; in a mixture-of-experts layer (numExperts
 *  > 0) q, k, v, o, the router (whose input every expert's gate / up shares) and each expert's down. */
function statLinearNames(numExperts: number): string[] {
  if (!numExperts) return [...LINEARS];
  const out = ['q', 'k', 'v', 'o', 'router'];
  for (let e = 0; e < numExperts; e++) out.push(`experts.${e}.down`);
  return out;
}
const statLinears = (fwd: BlockForward, i: number) => statLinearNames(fwd.isMoeLayer(i) ? fwd.spec.numExperts! : 0);

/** Which tap feeds which linear. */
export const LINEAR_INPUT: Record<LinearName, TapName> = {
  q: 'attnIn', k: 'attnIn', v: 'attnIn', o: 'oIn', gate: 'mlpIn', up: 'mlpIn', down: 'downIn',
};

/** Per input channel statistics of a linear (native channel_stats: f64 sums of |x|, as the TS loop it replaced). */
class ChannelAccumulator extends NativeChannelStats {
  result(): ChannelStats {
    // (an expert no calibration token was routed to: zeros)
    if (this.rows === 0) return { absmax: this.absmax, absmean: new Float32Array(this.dim), min: new Float32Array(this.dim), max: new Float32Array(this.dim) };
    return { absmax: this.absmax, absmean: this.absmean(), min: this.min, max: this.max };
  }
}

/** K/V per head: channel_stats over [rows, heads * hd], then min / max / absmax over each head's hd columns. */
async function headStats(native: NativeModule, x: Float32Array, heads: number, hd: number, acc: { min: Float32Array; max: Float32Array; absmax: Float32Array }): Promise<void> {
  const st = new NativeChannelStats(native, heads * hd);
  await st.add(x);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < hd; j++) {
      const c = h * hd + j;
      if (st.min[c] < acc.min[h]) acc.min[h] = st.min[c];
      if (st.max[c] > acc.max[h]) acc.max[h] = st.max[c];
      if (st.absmax[c] > acc.absmax[h]) acc.absmax[h] = st.absmax[c];
    }
  }
}

/** Groups sample indices into batches of about `batchTokens` tokens. */
export function batches<T extends { length: number }>(items: T[], batchTokens: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let tok = 0;
  for (const it of items) {
    if (cur.length > 0 && tok + it.length > batchTokens) {
      out.push(cur);
      cur = [];
      tok = 0;
    }
    cur.push(it);
    tok += it.length;
  }
  if (cur.length) out.push(cur);
  return out;
}

export function concatIds(seqs: Int32Array[]): Int32Array {
  const out = new Int32Array(seqs.reduce((a, s) => a + s.length, 0));
  let o = 0;
  for (const s of seqs) {
    out.set(s, o);
    o += s.length;
  }
  return out;
}

export async function resolveNative(opts: Pick<LoadOptions, 'backend' | 'native' | 'log'>): Promise<NativeModule> {
  return opts.native ?? (await selectBackend(opts.backend ?? 'cpu', opts.log ?? (() => {})));
}

export async function calibrate(modelDir: string, opts: CalibrateOptions): Promise<CalibrationResult> {
  const samples = opts.samples ?? 128;
  const seqlen = opts.seqlen ?? 2048;
  if (!Number.isInteger(samples) || samples < 1) throw new InvalidArgumentError(`samples must be an integer >= 1, got ${samples}`);
  if (!Number.isInteger(seqlen) || seqlen < 2) throw new InvalidArgumentError(`seqlen must be an integer >= 2, got ${seqlen}`);
  if (!opts.workDir) throw new InvalidArgumentError('workDir is required');
  const progress = opts.onProgress ?? (() => {});
  const log = opts.log ?? (() => {});
  const text = readCalibText(opts.dataset);
  const native = await resolveNative(opts);
  const { fwd, loaded } = BlockForward.fromDir(native, modelDir);
  const tokenizer = Tokenizer.fromDir(loaded.dir);
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const windows = calibWindows(ids, samples, seqlen);
  if (windows.length === 0) {
    throw new InvalidArgumentError(`calibration dataset ${opts.dataset} has ${ids.length} tokens: fewer than one sample of ${seqlen}`);
  }
  if (windows.length < samples) log('warn', `calibration dataset has only ${windows.length} windows of ${seqlen} tokens (asked for ${samples})`);
  const spec = fwd.spec;
  if (seqlen > spec.maxPositionEmbeddings) log('warn', `calib seqlen ${seqlen} exceeds max_position_embeddings ${spec.maxPositionEmbeddings}`);

  const acc = new Map<string, ChannelAccumulator>();
  const kvAcc = new Map<string, { min: Float32Array; max: Float32Array; absmax: Float32Array }>();
  for (let i = 0; i < spec.numLayers; i++) {
    for (const l of statLinears(fwd, i)) acc.set(`layers.${i}.${l}`, new ChannelAccumulator(fwd.native, fwd.linearShape(l)[1]));
    for (const kv of ['k_cache', 'v_cache']) {
      const H = spec.numKvHeads;
      kvAcc.set(`layers.${i}.${kv}`, { min: new Float32Array(H).fill(Infinity), max: new Float32Array(H).fill(-Infinity), absmax: new Float32Array(H) });
    }
  }
  const groups = batches(windows, opts.batchTokens ?? 4096);
  const steps = groups.length * spec.numLayers;
  let step = 0;
  progress(0, `calibrating on ${windows.length} samples of ${seqlen} tokens`);
  const inputs = new Map<string, ChannelStats>();
  // (the native session runs Llama-style dense layers only: a mixture of experts or Gemma goes layer by layer in TypeScript)
  const viaSession = useSession(native, spec, opts.session, 'calibrate', log);
  if (viaSession) {
    // layer by layer over all samples: the hidden states of every sample stay in backend memory
    const sess = createLayerSession(fwd);
    try {
      const total = windows.reduce((a, w) => a + w.length, 0);
      for (const [gi, g] of groups.entries()) {
        await sess.setInput(await fwd.embed(concatIds(g)), Int32Array.from(g.map((w) => w.length)), { append: gi > 0, reserveTokens: total });
      }
      for (let i = 0; i < spec.numLayers; i++) {
        await setLayerTensors(sess, fwd, i);
        const st = (await sess.run({ stats: true, advance: true, batchTokens: opts.batchTokens ?? 4096 }))!;
        for (const l of LINEARS) {
          const t = st[LINEAR_INPUT[l]];
          inputs.set(`layers.${i}.${l}`, { absmax: t.absmax, absmean: tapMean(t), min: t.min, max: t.max });
        }
        for (const [kv, t] of [['k_cache', st.k], ['v_cache', st.v]] as const) {
          const acc = kvAcc.get(`layers.${i}.${kv}`)!;
          for (let h = 0; h < spec.numKvHeads; h++) {
            for (let j = 0; j < spec.headDim; j++) {
              const c = h * spec.headDim + j;
              if (t.min[c] < acc.min[h]) acc.min[h] = t.min[c];
              if (t.max[c] > acc.max[h]) acc.max[h] = t.max[c];
              if (t.absmax[c] > acc.absmax[h]) acc.absmax[h] = t.absmax[c];
            }
          }
        }
        step += groups.length;
        progress(step / steps, `layer ${i + 1}/${spec.numLayers}, ${groups.length} batches`);
      }
    } finally {
      sess.dispose();
    }
  }
  for (const g of viaSession ? [] : groups) {
    const seqLens = g.map((w) => w.length);
    let x = await fwd.embed(concatIds(g));
    for (let i = 0; i < spec.numLayers; i++) {
      const taps: Partial<LayerTaps> = {};
      x = await fwd.layer(i, x, seqLens, taps);
      if (fwd.isMoeLayer(i)) {
        for (const l of ['q', 'o'] as const) await acc.get(`layers.${i}.${l}`)!.add(taps[LINEAR_INPUT[l]]!);
        await acc.get(`layers.${i}.router`)!.add(taps.mlpIn!);
        for (const [e, t] of taps.experts!.entries()) if (t.tokens.length) await acc.get(`layers.${i}.experts.${e}.down`)!.add(t.downIn);
      }
      for (const l of fwd.isMoeLayer(i) ? [] : LINEARS) {
        const tap = LINEAR_INPUT[l];
        // linears sharing an input share one accumulation
        const first = LINEARS.find((m) => LINEAR_INPUT[m] === tap)!;
        if (first === l) await acc.get(`layers.${i}.${l}`)!.add(taps[tap] as Float32Array);
      }
      await headStats(fwd.native, taps.k!, spec.numKvHeads, spec.headDim, kvAcc.get(`layers.${i}.k_cache`)!);
      await headStats(fwd.native, taps.v!, spec.numKvHeads, spec.headDim, kvAcc.get(`layers.${i}.v_cache`)!);
      step++;
      progress(step / steps, `layer ${i + 1}/${spec.numLayers}, batch ${groups.indexOf(g) + 1}/${groups.length}`);
    }
  }
  for (let i = 0; i < (viaSession ? 0 : spec.numLayers); i++) {
    for (const l of statLinears(fwd, i)) {
      const dense = (LINEARS as readonly string[]).includes(l);
      const first = dense ? LINEARS.find((m) => LINEAR_INPUT[m] === LINEAR_INPUT[l as LinearName])! : l;
      inputs.set(`layers.${i}.${l}`, acc.get(`layers.${i}.${first}`)!.result());
    }
  }
  const manifest: CalibManifest = {
    format: CALIB_FORMAT,
    model: loaded.dir,
    architecture: spec.hfArchitecture,
    dataset: calibDatasetLabel(opts.dataset),
    samples: windows.length,
    seqlen,
    tokens: windows.length * seqlen,
    numLayers: spec.numLayers,
    hiddenSize: spec.hiddenSize,
    intermediateSize: spec.intermediateSize,
    numKvHeads: spec.numKvHeads,
    ...(spec.numExperts ? { numExperts: spec.numExperts, moeIntermediateSize: spec.moeIntermediateSize } : {}),
    createdAt: new Date().toISOString(),
    stats: CALIB_STATS,
    inputs: CALIB_INPUTS,
  };
  await writeFilesAtomically(opts.workDir, (tmp) => {
    const tensors: WritableTensor[] = [];
    for (const [name, s] of inputs) {
      for (const k of ['absmax', 'absmean', 'min', 'max'] as const) tensors.push({ name: `${name}.${k}`, dtype: 'F32', shape: [s[k].length], data: f32Bytes(s[k]) });
    }
    for (const [name, s] of kvAcc) {
      for (const k of ['min', 'max', 'absmax'] as const) tensors.push({ name: `${name}.${k}`, dtype: 'F32', shape: [s[k].length], data: f32Bytes(s[k]) });
    }
    writeSafetensors(path.join(tmp, CALIB_STATS), tensors, { format: CALIB_FORMAT });
    const all = concatIds(windows);
    writeSafetensors(path.join(tmp, CALIB_INPUTS), [
      { name: 'input_ids', dtype: 'I32', shape: [windows.length, seqlen], data: new Uint8Array(all.buffer) },
    ], { format: CALIB_FORMAT });
    fs.writeFileSync(path.join(tmp, CALIB_MANIFEST), JSON.stringify(manifest, null, 2));
  });
  progress(1, `calibration saved in ${path.resolve(opts.workDir)}`);
  return { manifest, inputs, kv: kvAcc, samples: windows };
}

/** True when workDir holds a calibration manifest. */
export function hasCalibration(workDir: string): boolean {
  return fs.existsSync(path.join(workDir, CALIB_MANIFEST));
}

/** Reads and validates a calibration saved by `calibrate` (ModelFormatError naming the file when it is corrupt). */
export function loadCalibration(workDir: string, expect?: { numLayers: number; hiddenSize: number; intermediateSize: number }): CalibrationResult {
  const mfile = path.join(workDir, CALIB_MANIFEST);
  const manifest = readJson<CalibManifest>(mfile);
  if (manifest?.format !== CALIB_FORMAT) {
    throw new ModelFormatError('not a calibration manifest', { file: mfile, expected: `format "${CALIB_FORMAT}"`, found: JSON.stringify(manifest?.format) });
  }
  if (expect && (manifest.numLayers !== expect.numLayers || manifest.hiddenSize !== expect.hiddenSize || manifest.intermediateSize !== expect.intermediateSize)) {
    throw new ModelFormatError('calibration was made for a different model', {
      file: mfile, expected: `${expect.numLayers} layers, hidden ${expect.hiddenSize}, intermediate ${expect.intermediateSize}`,
      found: `${manifest.numLayers} layers, hidden ${manifest.hiddenSize}, intermediate ${manifest.intermediateSize}`,
    });
  }
  const readAll = (file: string) => {
    const h = readSafetensorsHeader(file);
    return new Map(h.tensors.map((t) => [t.name, t]));
  };
  const sfile = path.join(workDir, manifest.stats ?? CALIB_STATS);
  const stats = readAll(sfile);
  const f32 = (name: string, len: number): Float32Array => {
    const t = stats.get(name);
    if (!t) throw new ModelFormatError('calibration statistics are missing a tensor', { file: sfile, tensor: name, found: 'missing' });
    if (t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== len) {
      throw new ModelFormatError('calibration tensor has the wrong shape or dtype', { file: sfile, tensor: name, expected: `F32 [${len}]`, found: `${t.dtype} [${t.shape.join(', ')}]` });
    }
    const v = new Float32Array(readTensorBytes(t).slice().buffer);
    for (let i = 0; i < v.length; i++) {
      if (Number.isNaN(v[i])) throw new ModelFormatError('calibration tensor holds NaN', { file: sfile, tensor: name });
    }
    return v;
  };
  const widths: Record<LinearName, number> = {
    q: manifest.hiddenSize, k: manifest.hiddenSize, v: manifest.hiddenSize, gate: manifest.hiddenSize, up: manifest.hiddenSize,
    down: manifest.intermediateSize, o: -1,
  };
  const inputs = new Map<string, ChannelStats>();
  const kv = new Map<string, { min: Float32Array; max: Float32Array; absmax: Float32Array }>();
  for (let i = 0; i < manifest.numLayers; i++) {
    // a mixture-of-experts layer (it has router statistics): q, k, v, o, router and every expert's down
    const moe = !!manifest.numExperts && stats.has(`layers.${i}.router.absmax`);
    for (const l of statLinearNames(moe ? manifest.numExperts! : 0)) {
      const n = `layers.${i}.${l}`;
      const w = l === 'o' ? (stats.get(`${n}.absmax`)?.shape[0] ?? 0)
        : l === 'router' ? manifest.hiddenSize : l.startsWith('experts.') ? manifest.moeIntermediateSize ?? -1 : widths[l as LinearName];
      inputs.set(n, { absmax: f32(`${n}.absmax`, w), absmean: f32(`${n}.absmean`, w), min: f32(`${n}.min`, w), max: f32(`${n}.max`, w) });
    }
    for (const s of ['k_cache', 'v_cache']) {
      const n = `layers.${i}.${s}`;
      kv.set(n, { min: f32(`${n}.min`, manifest.numKvHeads), max: f32(`${n}.max`, manifest.numKvHeads), absmax: f32(`${n}.absmax`, manifest.numKvHeads) });
    }
  }
  const ifile = path.join(workDir, manifest.inputs ?? CALIB_INPUTS);
  const it = readAll(ifile).get('input_ids');
  if (!it || it.dtype !== 'I32' || it.shape.length !== 2 || it.shape[0] !== manifest.samples || it.shape[1] !== manifest.seqlen) {
    throw new ModelFormatError('calibration inputs are missing or malformed', {
      file: ifile, tensor: 'input_ids', expected: `I32 [${manifest.samples}, ${manifest.seqlen}]`, found: it ? `${it.dtype} [${it.shape.join(', ')}]` : 'missing',
    });
  }
  const all = new Int32Array(readTensorBytes(it).slice().buffer);
  const samples: Int32Array[] = [];
  for (let s = 0; s < manifest.samples; s++) samples.push(all.slice(s * manifest.seqlen, (s + 1) * manifest.seqlen));
  return { manifest, inputs, kv, samples };
}
