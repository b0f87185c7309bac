// Helpers shared by the architecture files: typed reads of config.json fields, RoPE parsing (both the classic
// `rope_theta`/`rope_scaling` form and the newer `rope_parameters` form), and the canonical-weight mapper.
import { ModelFormatError, QuantConfigError } from '../errors';
import type { RopeConfig, TensorSource } from '../native';
import { toNativeDType, type TensorInfo } from '../io/safetensors';
import type { HfConfig, ModelSpec, WeightMapContext } from './spec';

export function num(cfg: HfConfig, key: string, file: string, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelFormatError(`config.json lacks "${key}"`, { file, expected: 'a number', found: 'missing' });
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ModelFormatError(`config.json "${key}" is not a number`, { file, expected: 'a number', found: JSON.stringify(v) });
  }
  return v;
}

export function int(cfg: HfConfig, key: string, file: string, fallback?: number): number {
  const v = num(cfg, key, file, fallback);
  if (!Number.isInteger(v) || v < 0) {
    throw new ModelFormatError(`config.json "${key}" is not a non-negative integer`, { file, expected: 'integer >= 0', found: String(v) });
  }
  return v;
}

export function bool(cfg: HfConfig, key: string, fallback: boolean): boolean {
  const v = cfg[key];
  return typeof v === 'boolean' ? v : fallback;
}

/** 'float16' / 'bfloat16' / ... as declared by config.json (`dtype` in transformers v5, `torch_dtype` before). */
export function declaredDtype(cfg: HfConfig): string | undefined {
  const v = cfg.dtype ?? cfg.torch_dtype;
  return typeof v === 'string' ? v : undefined;
}

export function specDtype(cfg: HfConfig): 'f16' | 'bf16' {
  return declaredDtype(cfg) === 'bfloat16' ? 'bf16' : 'f16';
}

type RopeDict = Record<string, unknown>;

/**
 * RoPE from either form:
 *  - classic: `rope_theta` + `rope_scaling: { type|rope_type, factor, ... } | null`
 *  - transformers v5: `rope_parameters: { rope_theta, rope_type, factor, ... }`, possibly per layer type
 *    (`{ full_attention: {...}, sliding_attention: {...} }`; we use full_attention).
 */
export function parseRope(cfg: HfConfig, headDim: number, file: string, defaultTheta = 10000): RopeConfig {
  let params = cfg.rope_parameters as RopeDict | undefined | null;
  if (params && typeof params === 'object' && !('rope_type' in params) && !('rope_theta' in params) && 'full_attention' in params) {
    params = params.full_attention as RopeDict;
  }
  const scaling = (params ?? cfg.rope_scaling ?? null) as RopeDict | null;
  const thetaRaw = params?.rope_theta ?? cfg.rope_theta ?? defaultTheta;
  if (typeof thetaRaw !== 'number' || !(thetaRaw > 0)) {
    throw new ModelFormatError('bad rope_theta', { file, expected: 'a positive number', found: JSON.stringify(thetaRaw) });
  }
  const rawType = (scaling?.rope_type ?? scaling?.type ?? 'default') as string;
  const rope: RopeConfig = { type: 'default', theta: thetaRaw };
  const factor = (): number => {
    const f = scaling?.factor;
    if (typeof f !== 'number' || !(f > 0)) {
      throw new ModelFormatError(`rope scaling "${rawType}" needs a positive factor`, { file, expected: 'factor > 0', found: JSON.stringify(f) });
    }
    return f;
  };
  switch (rawType) {
    case 'default':
      break;
    case 'linear':
      rope.type = 'linear';
      rope.factor = factor();
      break;
    case 'dynamic':
      rope.type = 'dynamic';
      rope.factor = factor();
      break;
    case 'llama3': {
      rope.type = 'llama3';
      rope.factor = factor();
      const need = (k: string): number => {
        const v = scaling?.[k];
        if (typeof v !== 'number') {
          throw new ModelFormatError(`llama3 rope scaling lacks "${k}"`, { file, expected: 'a number', found: JSON.stringify(v) });
        }
        return v;
      };
      rope.lowFreqFactor = need('low_freq_factor');
      rope.highFreqFactor = need('high_freq_factor');
      rope.originalMaxPositionEmbeddings = need('original_max_position_embeddings');
      break;
    }
    case 'longrope':
    case 'su': {
      // Phi-3 128k / Phi-3.5: per-pair frequency divisors (short up to the original context, long beyond) and an
      // attention factor from the context extension, as transformers computes it
      rope.type = 'longrope';
      const list = (k: string): number[] => {
        const v = scaling?.[k];
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && x > 0)) {
          throw new ModelFormatError(`longrope scaling needs "${k}" (positive numbers)`, { file, expected: 'an array of numbers', found: JSON.stringify(v)?.slice(0, 80) });
        }
        return v as number[];
      };
      rope.shortFactor = list('short_factor');
      rope.longFactor = list('long_factor');
      const orig = (scaling?.original_max_position_embeddings ?? cfg.original_max_position_embeddings) as number | undefined;
      if (typeof orig !== 'number' || !(orig > 0)) {
        throw new ModelFormatError('longrope scaling needs original_max_position_embeddings', { file, expected: 'a positive number', found: JSON.stringify(orig) });
      }
      rope.originalMaxPositionEmbeddings = orig;
      const maxPos = typeof cfg.max_position_embeddings === 'number' ? cfg.max_position_embeddings : orig;
      const factor = maxPos / orig;
      const given = scaling?.attention_factor;
      rope.attentionFactor = typeof given === 'number' ? given : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      break;
    }
    case 'yarn': {
      // Qwen2.5 / Qwen3 long context ({ rope_type: yarn, factor: 4, original_max_position_embeddings: 32768 }),
      // computed as transformers v5 does: the band of pairs between kept and interpolated frequencies is set over the
      // original context; the attention factor (cos / sin multiplier) is given, or 0.1 ln(factor) + 1 (with mscale /
      // mscale_all_dim: their ratio)
      rope.type = 'yarn';
      const maxPos = typeof cfg.max_position_embeddings === 'number' ? cfg.max_position_embeddings : undefined;
      const orig = (scaling?.original_max_position_embeddings ?? cfg.original_max_position_embeddings ?? maxPos) as number | undefined;
      if (typeof orig !== 'number' || !(orig > 0)) {
        throw new ModelFormatError('yarn scaling needs original_max_position_embeddings', { file, expected: 'a positive number', found: JSON.stringify(orig) });
      }
      rope.originalMaxPositionEmbeddings = orig;
      rope.factor = typeof scaling?.factor === 'number' ? factor() : maxPos !== undefined ? maxPos / orig : factor();
      const f = rope.factor;
      const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      const given = scaling?.attention_factor;
      const ms = scaling?.mscale, msAll = scaling?.mscale_all_dim;
      rope.attentionFactor = typeof given === 'number' ? given
        : typeof ms === 'number' && ms && typeof msAll === 'number' && msAll ? mscale(f, ms) / mscale(f, msAll) : mscale(f);
      const beta = (k: string, d: number): number => {
        const v = scaling?.[k];
        if (v === undefined || v === null || v === 0) return d;
        if (typeof v !== 'number' || !(v > 0)) throw new ModelFormatError(`yarn ${k} must be a positive number`, { file, found: JSON.stringify(v) });
        return v;
      };
      rope.betaFast = beta('beta_fast', 32);
      rope.betaSlow = beta('beta_slow', 1);
      if (scaling?.truncate === false) rope.truncate = false;
      break;
    }
    default:
      throw new ModelFormatError(`unsupported rope scaling type "${rawType}"`, {
        file, expected: 'default, linear, dynamic, llama3, longrope or yarn', found: rawType,
      });
  }
  const partial = (params?.partial_rotary_factor ?? cfg.partial_rotary_factor) as number | undefined;
  if (typeof partial === 'number' && partial > 0 && partial < 1) rope.rotaryDim = Math.floor(headDim * partial);
  if (rope.type === 'longrope') {
    // (with a partial rotary head, as Phi-4-mini has, the factors cover the rotated pairs only)
    const half = Math.floor((rope.rotaryDim ?? headDim) / 2);
    if (rope.shortFactor!.length !== half || rope.longFactor!.length !== half) {
      throw new ModelFormatError(`longrope short_factor / long_factor must have ${half} values (rotary dims / 2)`, {
        file, found: `${rope.shortFactor!.length} / ${rope.longFactor!.length}`,
      });
    }
  }
  return rope;
}

/** Fields every supported decoder shares, read the same way. */
export function parseCommon(cfg: HfConfig, file: string, arch: string, hfArchitecture: string): ModelSpec {
  const hiddenSize = int(cfg, 'hidden_size', file);
  const numHeads = int(cfg, 'num_attention_heads', file);
  const numKvHeads = int(cfg, 'num_key_value_heads', file, numHeads);
  if (numHeads === 0 || numKvHeads === 0 || numHeads % numKvHeads !== 0) {
    throw new ModelFormatError('num_attention_heads must be a positive multiple of num_key_value_heads', {
      file, found: `${numHeads} heads, ${numKvHeads} kv heads`,
    });
  }
  const headDim = int(cfg, 'head_dim', file, hiddenSize / numHeads);
  if (!Number.isInteger(headDim)) {
    throw new ModelFormatError('hidden_size is not a multiple of num_attention_heads and no head_dim is given', {
      file, found: `${hiddenSize} / ${numHeads}`,
    });
  }
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') {
    throw new ModelFormatError('unsupported hidden_act', { file, expected: 'silu', found: JSON.stringify(act) });
  }
  const maxPos = int(cfg, 'max_position_embeddings', file, 2048);
  const spec: ModelSpec = {
    arch,
    hfArchitecture,
    modelType: typeof cfg.model_type === 'string' ? cfg.model_type : arch,
    dtype: specDtype(cfg),
    declaredDtype: declaredDtype(cfg),
    vocabSize: int(cfg, 'vocab_size', file),
    hiddenSize,
    intermediateSize: int(cfg, 'intermediate_size', file),
    numLayers: int(cfg, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(cfg, 'rms_norm_eps', file, 1e-6),
    maxPositionEmbeddings: maxPos,
    rope: parseRope(cfg, headDim, file),
    tieWordEmbeddings: bool(cfg, 'tie_word_embeddings', false),
    hiddenAct: 'silu',
    qkvBias: false,
    oBias: false,
  };
  const q = parseQuantConfig(cfg, file);
  if (q) spec.quant = q;
  return spec;
}

/** Llama's bias flags: `attention_bias` (q/k/v and o biases); `mlp_bias` has no canonical tensor and is refused. */
export function applyLlamaBiases(spec: ModelSpec, cfg: HfConfig, file: string): void {
  const bias = bool(cfg, 'attention_bias', false);
  spec.qkvBias = bias;
  spec.oBias = bias;
  if (bool(cfg, 'mlp_bias', false)) {
    throw new ModelFormatError('mlp_bias is not supported', { file, expected: 'mlp_bias: false', found: 'true' });
  }
}

/**
 * config.json `sliding_window` → spec.layerWindows, the window of each layer (0: full attention), as transformers
 * builds its masks: a query at position p sees keys (p - sliding_window, p]. Which layers slide: config.json
 * `layer_types` when given ('sliding_attention' / 'full_attention'), else every layer from `fromLayer` on (Mistral and
 * Phi-3: all; Qwen2/3 with use_sliding_window: from max_window_layers). A window no shorter than the context never
 * bites and is left out.
 */
export function applySlidingWindow(spec: ModelSpec, cfg: HfConfig, file: string, fromLayer = 0): void {
  if (cfg.sliding_window === null || cfg.sliding_window === undefined) return;
  const w = int(cfg, 'sliding_window', file);
  if (!(w > 0) || w >= spec.maxPositionEmbeddings) return;
  const types = layerTypes(cfg, spec.numLayers, file);
  const windows = Array.from({ length: spec.numLayers }, (_, i) => (types ? types[i] === 'sliding_attention' : i >= fromLayer) ? w : 0);
  if (windows.some((x) => x > 0)) spec.layerWindows = windows;
}

/** config.json `layer_types` ('sliding_attention' / 'full_attention', one per layer), or undefined when absent. */
export function layerTypes(cfg: HfConfig, numLayers: number, file: string): string[] | undefined {
  const types = cfg.layer_types;
  if (types === undefined || types === null) return undefined;
  if (!Array.isArray(types) || types.length !== numLayers) {
    throw new ModelFormatError('layer_types must list one attention type per layer', {
      file, expected: `${numLayers} entries`, found: JSON.stringify(types).slice(0, 80),
    });
  }
  return types as string[];
}

/** `quantization_config` → native quant settings (AutoAWQ GEMM, 4 bits); other methods are refused clearly. */
export function parseQuantConfig(cfg: HfConfig, file: string): ModelSpec['quant'] | undefined {
  const qc = cfg.quantization_config as Record<string, unknown> | undefined;
  if (!qc) return undefined;
  const method = String(qc.quant_method ?? qc.quant_type ?? '');
  if (method !== 'awq') {
    throw new QuantConfigError(`${file}: unsupported quantization method "${method}" (supported: awq)`);
  }
  const bits = Number(qc.bits ?? qc.w_bit);
  const groupSize = Number(qc.group_size ?? qc.q_group_size);
  const version = String(qc.version ?? 'gemm').toLowerCase();
  if (bits !== 4) throw new QuantConfigError(`${file}: AWQ with ${bits} bits is not supported (supported: 4)`);
  if (!(groupSize > 0)) throw new QuantConfigError(`${file}: AWQ group_size must be positive, found ${qc.group_size}`);
  if (version !== 'gemm') throw new QuantConfigError(`${file}: AWQ version "${version}" is not supported (supported: gemm)`);
  return { method: 'awq', bits: 4, groupSize };
}

/** Expected shape of each canonical tensor of one decoder layer / the model. */
export function canonicalShapes(spec: ModelSpec): { global: Record<string, number[]>; layer: Record<string, number[]> } {
  const { hiddenSize: h, numHeads, numKvHeads, headDim, intermediateSize: ff, vocabSize } = spec;
  const global: Record<string, number[]> = { 'embed_tokens.weight': [vocabSize, h], 'norm.weight': [h] };
  if (!spec.tieWordEmbeddings) global['lm_head.weight'] = [vocabSize, h];
  const layer: Record<string, number[]> = {
    'input_norm.weight': [h],
    'post_norm.weight': [h],
    'q.weight': [numHeads * headDim, h],
    'k.weight': [numKvHeads * headDim, h],
    'v.weight': [numKvHeads * headDim, h],
    'o.weight': [h, numHeads * headDim],
    'gate.weight': [ff, h],
    'up.weight': [ff, h],
    'down.weight': [h, ff],
  };
  if (spec.qkvBias) {
    layer['q.bias'] = [numHeads * headDim];
    layer['k.bias'] = [numKvHeads * headDim];
    layer['v.bias'] = [numKvHeads * headDim];
  }
  if (spec.oBias) layer['o.bias'] = [h];
  if (spec.qkNorm) {
    layer['q_norm.weight'] = [headDim];
    layer['k_norm.weight'] = [headDim];
  }
  if (spec.sandwichNorms) {
    layer['attn_out_norm.weight'] = [h];
    layer['mlp_out_norm.weight'] = [h];
  }
  return { global, layer };
}

export const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Looks up an HF tensor and checks its shape and dtype; throws ModelFormatError naming file/tensor otherwise. */
export function requireTensor(ctx: WeightMapContext, hfName: string, shape: readonly number[]): TensorInfo {
  const t = ctx.weights.tensors.get(hfName);
  if (!t) {
    throw new ModelFormatError('missing tensor', { file: ctx.dir, tensor: hfName, expected: `${shapeStr(shape)} ${ctx.spec.dtype}`, found: 'missing' });
  }
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ModelFormatError('tensor has the wrong shape', { file: t.file, tensor: hfName, expected: shapeStr(shape), found: shapeStr(t.shape) });
  }
  const dt = toNativeDType(t.dtype);
  if (dt !== ctx.spec.dtype) {
    throw new ModelFormatError('tensor has the wrong dtype', {
      file: t.file, tensor: hfName, expected: ctx.spec.dtype === 'bf16' ? 'BF16' : 'F16', found: t.dtype,
    });
  }
  return t;
}

export function fileSource(canonical: string, t: TensorInfo): TensorSource {
  return { name: canonical, dtype: toNativeDType(t.dtype)!, shape: [...t.shape], file: t.file, offset: t.offset };
}

/**
 * Maps by name tables: `global` canonical → HF name, `layer` canonical suffix → HF name with `{i}` for the layer.
 * Canonical tensors absent from the tables (handled by the caller, e.g. a split) are skipped.
 */
export const LINEAR_CANONICAL = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/** Checks an AutoAWQ tensor (qweight/qzeros: I32, scales: F16) and returns its source. */
function requireAwqTensor(ctx: WeightMapContext, hfName: string, shape: readonly number[], dtype: 'I32' | 'F16', canonical: string): TensorSource {
  const t = ctx.weights.tensors.get(hfName);
  if (!t) throw new ModelFormatError('missing AWQ tensor', { file: ctx.dir, tensor: hfName, expected: `${shapeStr(shape)} ${dtype}`, found: 'missing' });
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ModelFormatError('AWQ tensor has the wrong shape', { file: t.file, tensor: hfName, expected: shapeStr(shape), found: shapeStr(t.shape) });
  }
  if (t.dtype !== dtype) throw new ModelFormatError('AWQ tensor has the wrong dtype', { file: t.file, tensor: hfName, expected: dtype, found: t.dtype });
  return fileSource(canonical, t);
}

/**
 * The AutoAWQ GEMM tensors of one linear whose fp weight would be [out, in]: qweight [in, out/8] and qzeros
 * [in/group, out/8] (int32, eight 4-bit values per word), scales [in/group, out] (fp16).
 */
export function awqLinearSources(ctx: WeightMapContext, hfPrefix: string, canonicalPrefix: string, out: number, inp: number): TensorSource[] {
  const q = ctx.spec.quant!;
  if (inp % q.groupSize !== 0 || out % 8 !== 0) {
    throw new QuantConfigError(`${hfPrefix}: [${out}, ${inp}] cannot be quantized with group size ${q.groupSize} (in % group and out % 8 must be 0)`);
  }
  const groups = inp / q.groupSize;
  return [
    requireAwqTensor(ctx, `${hfPrefix}.qweight`, [inp, out / 8], 'I32', `${canonicalPrefix}.qweight`),
    requireAwqTensor(ctx, `${hfPrefix}.qzeros`, [groups, out / 8], 'I32', `${canonicalPrefix}.qzeros`),
    requireAwqTensor(ctx, `${hfPrefix}.scales`, [groups, out], 'F16', `${canonicalPrefix}.scales`),
  ];
}

/**
 * Maps by name tables: `global` canonical → HF name, `layer` canonical suffix → HF name with `{i}` for the layer.
 * Canonical tensors absent from the tables (handled by the caller, e.g. a split) are skipped. With an AWQ spec the
 * decoder linears map to their qweight/qzeros/scales instead of `.weight`.
 */
export function mapByTable(
  ctx: WeightMapContext,
  tables: { global: Record<string, string>; layer: Record<string, string> },
  skipLayer: ReadonlySet<string> = new Set(),
): TensorSource[] {
  const shapes = canonicalShapes(ctx.spec);
  const out: TensorSource[] = [];
  for (const [canon, shape] of Object.entries(shapes.global)) {
    const hf = tables.global[canon];
    if (!hf) throw new Error(`internal: no HF name for ${canon}`);
    out.push(fileSource(canon, requireTensor(ctx, hf, shape)));
  }
  const quantized = new Set<string>(ctx.spec.quant ? LINEAR_CANONICAL.map((l) => `${l}.weight`) : []);
  for (let i = 0; i < ctx.spec.numLayers; i++) {
    for (const [canon, shape] of Object.entries(shapes.layer)) {
      if (skipLayer.has(canon)) continue;
      const hf = tables.layer[canon];
      if (!hf) throw new Error(`internal: no HF name for layers.{i}.${canon}`);
      const hfName = hf.replace('{i}', String(i));
      if (quantized.has(canon)) {
        out.push(...awqLinearSources(ctx, hfName.replace(/\.weight$/, ''), `layers.${i}.${canon.replace(/\.weight$/, '')}`, shape[0], shape[1]));
      } else {
        out.push(fileSource(`layers.${i}.${canon}`, requireTensor(ctx, hfName, shape)));
      }
    }
  }
  return out;
}

/** HF names of the Llama family (Llama, Qwen2, InternLM v1 share them). */
export const LLAMA_STYLE_NAMES = {
  global: { 'embed_tokens.weight': 'model.embed_tokens.weight', 'norm.weight': 'model.norm.weight', 'lm_head.weight': 'lm_head.weight' },
  layer: {
    'input_norm.weight': 'model.layers.{i}.input_layernorm.weight',
    'post_norm.weight': 'model.layers.{i}.post_attention_layernorm.weight',
    'q.weight': 'model.layers.{i}.self_attn.q_proj.weight',
    'k.weight': 'model.layers.{i}.self_attn.k_proj.weight',
    'v.weight': 'model.layers.{i}.self_attn.v_proj.weight',
    'o.weight': 'model.layers.{i}.self_attn.o_proj.weight',
    'q.bias': 'model.layers.{i}.self_attn.q_proj.bias',
    'k.bias': 'model.layers.{i}.self_attn.k_proj.bias',
    'v.bias': 'model.layers.{i}.self_attn.v_proj.bias',
    'o.bias': 'model.layers.{i}.self_attn.o_proj.bias',
    'gate.weight': 'model.layers.{i}.mlp.gate_proj.weight',
    'up.weight': 'model.layers.{i}.mlp.up_proj.weight',
    'down.weight': 'model.layers.{i}.mlp.down_proj.weight',
  },
} as const;

/** AWQ groups of a Llama-style layer in HF names. */
export function llamaStyleAwqGroups(spec: ModelSpec, layer: number): import('./spec').AwqScaleGroup[] {
  const p = `model.layers.${layer}`;
  return [
    { kind: 'norm', prev: `${p}.input_layernorm`, linears: [`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`] },
    { kind: 'linear', prev: `${p}.self_attn.v_proj`, linears: [`${p}.self_attn.o_proj`], kvGroupRepeat: spec.numHeads / spec.numKvHeads },
    { kind: 'norm', prev: `${p}.post_attention_layernorm`, linears: [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`] },
    { kind: 'linear', prev: `${p}.mlp.up_proj`, linears: [`${p}.mlp.down_proj`] },
  ];
}
