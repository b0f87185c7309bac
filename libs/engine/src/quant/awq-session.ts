// The native per-layer AWQ session (libs/native/src/engine/awq_session.h) seen from the quantization code: one
// decoder layer's weights and the samples' layer inputs stay in backend memory (the GPU on cuda) and the searches
// get small answers (losses, clips, statistics). awq.ts and calibrate.ts use it when the native module has it
// (`useSession`); the TypeScript path over BlockForward stays for test doubles, `session: false` and the models whose
// layers the session does not run (`nativeSessionRefusal`).
import { InvalidArgumentError } from '../errors';
import type { Logger } from '../generation/types';
import type { ModelSpec } from '../models/spec';
import type { AwqTapStats, NativeAwqSession, NativeModule } from '../native';
import { LINEARS } from './block-forward';
import type { BlockForward } from './block-forward';

/** What keeps the native layer session from running the model's layers, or undefined when it runs them: it runs dense
 *  Llama-style layers (a norm before attention and one before a SwiGLU MLP, one RoPE, plain softmax attention), not a
 *  mixture of experts' routing nor Gemma's gelu_tanh MLP (Gemma 1 / 2 / 3), sandwich norms (2 / 3), attention logit
 *  soft-capping (2) and local RoPE (3). */
export function nativeSessionRefusal(spec: ModelSpec): string | undefined {
  if (spec.numExperts) return 'a mixture of experts';
  const parts = [
    spec.sandwichNorms && 'sandwich norms', spec.hiddenAct !== 'silu' && `a ${spec.hiddenAct} MLP`, spec.ropeLocal && 'a local RoPE on its sliding layers',
    !!spec.attnLogitSoftcap && 'attention logit soft-capping',
  ].filter((p): p is string => !!p);
  return parts.length ? `a model with ${parts.join(', ')}` : undefined;
}

/**
 * Whether `step` runs through the native session: when the module has it and runs the model's layers
 * (nativeSessionRefusal), unless `opt` is false. A model the session does not run takes the TypeScript path (said
 * through `log` when given); `opt` true for it is refused with the reason.
 */
export function useSession(native: NativeModule, spec: ModelSpec, opt: boolean | undefined, step: 'calibrate' | 'auto_awq', log?: Logger): boolean {
  const refusal = nativeSessionRefusal(spec);
  if (!refusal) return opt !== false && typeof native.createAwqSession === 'function';
  if (opt === true) {
    throw new InvalidArgumentError(`${spec.hfArchitecture} is ${refusal}: ${step} runs its layers in TypeScript (session: false), not in the native session`);
  }
  log?.('info', `${spec.hfArchitecture} is ${refusal}: ${step === 'calibrate' ? 'calibration' : 'the search'} runs layer by layer in TypeScript ` +
    '(the native layer session does not run its layers), slower than in the session for a model of its size');
  return false;
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
