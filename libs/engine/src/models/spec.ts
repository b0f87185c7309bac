// What an architecture file provides. An architecture is: HF config.json → ModelSpec, the HF → canonical weight map,
// the AWQ scaling groups in its HF tensor names, and a default chat template for checkpoints that ship none.
import type { NativeModelConfig, TensorSource } from '../native';
import type { SafetensorsIndex } from '../io/safetensors';

/** A parsed config.json (only the fields we read are typed by the parsers). */
export type HfConfig = Record<string, unknown>;

/** The native model config minus what depends on the machine (backend, threads, device) and the weights. */
export type NativeArchConfig = Omit<NativeModelConfig, 'backend' | 'threads' | 'device' | 'tensors'>;

export interface ModelSpec extends NativeArchConfig {
  /** Registry key of the architecture ('llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3',
   *  'internlm', 'internlm2', 'mixtral', 'qwen3_moe'). */
  arch: string;
  /** The HF class name from config.json `architectures[0]`. */
  hfArchitecture: string;
  modelType: string;
  qkvBias: boolean;
  oBias: boolean;
  /** The dtype config.json declares (torch_dtype / dtype), if any; the weights' dtype decides `dtype`. */
  declaredDtype?: string;
}

/** One AWQ smoothing group: the output of `prev` is divided by s, the inputs of `linears` multiplied by s. */
export interface AwqScaleGroup {
  /** 'norm': prev is an RMSNorm (scale its weight). 'linear': prev is a linear layer (scale its output rows + bias). */
  kind: 'norm' | 'linear';
  /** HF module name of the producer, e.g. `model.layers.0.input_layernorm`. */
  prev: string;
  /** HF module names of the consumers, e.g. `model.layers.0.self_attn.q_proj`. */
  linears: string[];
  /** For kind 'linear' with grouped-query attention (v → o): each prev output row feeds `repeat` consumer columns
   *  blocks; quantization code decides whether to apply or skip it. */
  kvGroupRepeat?: number;
}

/** A checkpoint tensor that packs the output rows of several canonical linears (InternLM2's `attention.wqkv`). */
export interface PackedLinear {
  /** HF module name, e.g. `model.layers.0.attention.wqkv` (tensors `<hfPrefix>.weight`, `.bias`, `.qweight`...). */
  hfPrefix: string;
  /** Canonical linears of the layer whose rows it packs, e.g. ['q', 'k', 'v']. */
  parts: readonly string[];
  /** Lays the parts' rows (`rowBytes` bytes per output row, parts in `parts` order) out in the checkpoint's row order. */
  pack(parts: Uint8Array[], rowBytes: number): Uint8Array;
}

export interface WeightMapContext {
  spec: ModelSpec;
  weights: SafetensorsIndex;
  /** Model directory, for error messages. */
  dir: string;
}

export interface ArchitectureDef {
  key: string;
  /** HF `architectures[0]` class names this file handles. */
  hfArchitectures: readonly string[];
  parseConfig(cfg: HfConfig, file: string): ModelSpec;
  /** HF safetensors → canonical tensors (validated: present, right shape, right dtype). A source's `scale` and `add`
   *  fold into that tensor as it loads (value * scale + add: Granite's multipliers, Gemma's norms stored as w and applied
   *  as 1 + w); writers of HF-layout checkpoints (auto_awq) take them back out of what they write. */
  mapWeights(ctx: WeightMapContext): TensorSource[];
  /** AWQ scaling groups of decoder layer `layer`, in HF module names. */
  awqScaleGroups(spec: ModelSpec, layer: number): AwqScaleGroup[];
  /** Checkpoint tensors packing several canonical linears of layer `layer` (absent: every linear is its own tensor).
   *  Writers of HF-layout checkpoints (auto_awq) use it to store split linears back in the model's own layout. */
  packedLinears?(spec: ModelSpec, layer: number): PackedLinear[];
  /** A chat template (Jinja) for checkpoints that ship none. */
  defaultChatTemplate(spec: ModelSpec): string;
  /** What the platform cannot do with it yet, in a few words (`lmfleet list` prints it beside the name). */
  limits?: string;
}

/** Picks the fields native code consumes (drops the engine-side extras). */
export function toNativeArchConfig(spec: ModelSpec): NativeArchConfig {
  const c: NativeArchConfig = {
    dtype: spec.dtype,
    vocabSize: spec.vocabSize,
    hiddenSize: spec.hiddenSize,
    intermediateSize: spec.intermediateSize,
    numLayers: spec.numLayers,
    numHeads: spec.numHeads,
    numKvHeads: spec.numKvHeads,
    headDim: spec.headDim,
    rmsNormEps: spec.rmsNormEps,
    maxPositionEmbeddings: spec.maxPositionEmbeddings,
    rope: { ...spec.rope },
    tieWordEmbeddings: spec.tieWordEmbeddings,
    hiddenAct: spec.hiddenAct,
  };
  if (spec.qkNorm) c.qkNorm = true;
  if (spec.embedScale !== undefined) c.embedScale = spec.embedScale;
  if (spec.sandwichNorms) c.sandwichNorms = true;
  if (spec.attnLogitSoftcap) c.attnLogitSoftcap = spec.attnLogitSoftcap;
  if (spec.finalLogitSoftcap) c.finalLogitSoftcap = spec.finalLogitSoftcap;
  if (spec.ropeLocal) c.ropeLocal = { ...spec.ropeLocal };
  if (spec.layerWindows) c.layerWindows = [...spec.layerWindows];
  if (spec.noRopeLayers) c.noRopeLayers = [...spec.noRopeLayers];
  if (spec.numExperts) {
    c.numExperts = spec.numExperts;
    c.numExpertsPerTok = spec.numExpertsPerTok;
    c.moeIntermediateSize = spec.moeIntermediateSize;
    if (spec.normTopkProb !== undefined) c.normTopkProb = spec.normTopkProb;
    if (spec.denseLayers?.length) c.denseLayers = [...spec.denseLayers];
  }
  if (spec.quant) c.quant = { ...spec.quant };
  return c;
}
