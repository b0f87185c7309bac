// The native per-layer AWQ session (libs/native/src/engine/awq_session.h) seen from the quantization code: one
// decoder layer's weights and the samples' layer inputs stay in backend memory (the GPU on cuda) and the searches
// get small answers (losses, clips, statistics). awq.ts and calibrate.ts use it when the native module has it
// (`useSession`); the TypeScript path over BlockForward stays for test doubles and `session: false`.
import type { AwqTapStats, NativeAwqSession, NativeModule } from '../native';
import { LINEARS } from './block-forward';
import type { BlockForward } from './block-forward';

/** Whether the quantization steps run through the native session: when the module has it, unless `opt` is false. */
export function useSession(native: NativeModule, opt?: boolean): boolean {
  return opt !== false && typeof native.createAwqSession === 'function';
}

export function createLayerSession(fwd: BlockForward): NativeAwqSession {
  const s = fwd.spec;
  return fwd.native.createAwqSession!({
    hiddenSize: s.hiddenSize, intermediateSize: s.intermediateSize, numHeads: s.numHeads, numKvHeads: s.numKvHeads,
    headDim: s.headDim, rmsNormEps: s.rmsNormEps, maxPositionEmbeddings: s.maxPositionEmbeddings, rope: s.rope,
    qkNorm: s.qkNorm === true,
  });
}

/** Layer i's tensors in the session's names (all of them, or those of `only`: linear names and norm names). */
export function layerTensors(fwd: BlockForward, i: number, only?: readonly string[]): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const want = (n: string) => !only || only.includes(n);
  for (const l of LINEARS) {
    if (!want(l)) continue;
    out[l] = fwd.w(`layers.${i}.${l}.weight`);
    const b = fwd.weights.get(`layers.${i}.${l}.bias`);
    if (b) out[`${l}.bias`] = b;
  }
  const norms = fwd.spec.qkNorm ? ['input_norm', 'post_norm', 'q_norm', 'k_norm'] : ['input_norm', 'post_norm'];
  for (const n of norms) if (want(n)) out[n] = fwd.w(`layers.${i}.${n}.weight`);
  return out;
}

/** Loads layer i into the session: its tensors (layerTensors), its sliding window (spec.layerWindows) and whether it
 *  rotates q and k (spec.noRopeLayers). */
export async function setLayerTensors(sess: NativeAwqSession, fwd: BlockForward, i: number, only?: readonly string[]): Promise<void> {
  await sess.setTensors(layerTensors(fwd, i, only), { window: fwd.spec.layerWindows?.[i] ?? 0, rope: !fwd.spec.noRopeLayers?.includes(i) });
}

/** mean |x| per column of a tap's statistics, as f32 (the f64 sum over the rows, divided once). */
export function tapMean(st: AwqTapStats): Float32Array {
  const out = new Float32Array(st.abssum.length);
  for (let c = 0; c < out.length; c++) out[c] = st.abssum[c] / Math.max(1, st.rows);
  return out;
}

/** Row indices that `subsampleRows` (awq.ts) picks: at most n rows of `rows`, evenly strided. */
export function subsampleIndices(rows: number, n: number): Int32Array {
  if (rows <= n) return Int32Array.from({ length: rows }, (_, r) => r);
  const out = new Int32Array(n);
  const step = rows / n;
  for (let r = 0; r < n; r++) out[r] = Math.floor(r * step);
  return out;
}
