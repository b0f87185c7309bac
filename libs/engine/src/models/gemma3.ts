// Gemma 3 text models: Gemma3ForCausalLM (gemma-3-1b, gemma-3-270m) and the language model of
// Gemma3ForConditionalGeneration checkpoints (gemma-3-4b / 12b / 27b: config.json nests the text config under
// `text_config`, the weights sit under `language_model.model.*` (older) or `model.language_model.*` (newer), the vision
// tower is ignored: text only). transformers' Gemma3TextModel:
//   h0 = embed(ids) * sqrt(hidden_size)   (the scale rounded to the weights' dtype: embed_scale.to(weight.dtype))
//   x += post_attention_layernorm(attn(input_layernorm(x)))       q / k RMS-normed per head before RoPE, as Qwen3
//   x += post_feedforward_layernorm(down(gelu_tanh(gate(n)) * up(n))),  n = pre_feedforward_layernorm(x)
//   logits = lm_head(norm(x))            lm_head tied to the (unscaled) embedding
// Every RMSNorm multiplies by (1 + w): the canonical norm tensors carry `add: 1` (TensorSource.add), so the engine reads
// 1 + w and auto_awq writes its scaled norms back as (1 + w) / s - 1. Canonical names: input_layernorm → input_norm,
// pre_feedforward_layernorm → post_norm (the norm in front of the MLP), post_attention_layernorm → attn_out_norm and
// post_feedforward_layernorm → mlp_out_norm (spec.sandwichNorms). The softmax scale is query_pre_attn_scalar^-0.5
// (rope.attentionScale). Layers slide (layer_types, else every layer but each sliding_window_pattern-th) over the last
// sliding_window positions and use their own RoPE (rope_local_base_freq, no scaling: spec.ropeLocal); full layers use
// rope_theta with rope_scaling (linear x8 on 4b and up). transformers 5 writes both as rope_parameters per layer type.
// Attention / final logit soft-capping (Gemma 2) and bidirectional attention (EmbeddingGemma) are refused. calibrate and
// auto_awq run these layers in TypeScript (quant/block-forward.ts): the native layer session runs Llama-style layers
// only. The goldens test/fixtures/golden/gemma3* check all of it against transformers.
import { GEMMA_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { roundHalf } from '../io/half';
import { bool, int, layerTypes, mapByTable, num, parseCommon, parseRope, specDtype } from './common';
import type { ArchitectureDef, AwqScaleGroup, HfConfig, ModelSpec, WeightMapContext } from './spec';

/** Gemma3TextConfig's defaults: gemma-3-4b's text_config states only what differs from them. */
const TEXT_DEFAULTS: HfConfig = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131072, rms_norm_eps: 1e-6, rope_theta: 1e6,
  rope_local_base_freq: 10000, query_pre_attn_scalar: 256, sliding_window: 4096, tie_word_embeddings: true,
};

const GELU_TANH = ['gelu_pytorch_tanh', 'gelu_tanh'];

/** The text config: config.json itself, or its `text_config` (with the top level's dtype and quantization_config). */
function textConfig(cfg: HfConfig, file: string): HfConfig {
  if (cfg.text_config === undefined) return { ...TEXT_DEFAULTS, ...cfg };
  const text = cfg.text_config;
  if (typeof text !== 'object' || text === null) throw new ModelFormatError('text_config must be an object', { file, found: JSON.stringify(text) });
  const inherited = Object.fromEntries(['torch_dtype', 'dtype', 'quantization_config', 'tie_word_embeddings'].filter((k) => cfg[k] !== undefined).map((k) => [k, cfg[k]]));
  return { ...TEXT_DEFAULTS, ...inherited, ...text };
}

/** The weights' prefix of the text model ('model.' for Gemma3ForCausalLM) per parsed spec, found by mapWeights. */
const PREFIX = new WeakMap<ModelSpec, string>();
const PREFIXES = ['model.', 'model.language_model.', 'language_model.model.'];

function parseGemma3(cfg: HfConfig, file: string, hfArchitecture: string): ModelSpec {
  const c = textConfig(cfg, file);
  for (const k of ['final_logit_softcapping', 'attn_logit_softcapping']) {
    if (c[k] !== undefined && c[k] !== null) {
      throw new ModelFormatError(`${k} is not supported (Gemma 2's soft-capping; Gemma 3 has none)`, { file, expected: 'null', found: JSON.stringify(c[k]) });
    }
  }
  if (bool(c, 'use_bidirectional_attention', false)) {
    throw new ModelFormatError('use_bidirectional_attention is not supported (EmbeddingGemma\'s encoder; the engine decodes causally)', { file, expected: 'false', found: 'true' });
  }
  const act = c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh';
  if (typeof act !== 'string' || !GELU_TANH.includes(act)) {
    throw new ModelFormatError('unsupported hidden_activation', { file, expected: GELU_TANH.join(' or '), found: JSON.stringify(act) });
  }
  const spec = parseCommon({ ...c, hidden_act: undefined }, file, 'gemma3', hfArchitecture);
  spec.hiddenAct = 'gelu_tanh';
  spec.qkNorm = true;
  spec.sandwichNorms = true;
  spec.tieWordEmbeddings = bool(c, 'tie_word_embeddings', true);
  spec.qkvBias = spec.oBias = bool(c, 'attention_bias', false);
  spec.embedScale = roundHalf(Math.sqrt(spec.hiddenSize), specDtype(c));
  const scalar = num(c, 'query_pre_attn_scalar', file);
  if (!(scalar > 0)) throw new ModelFormatError('query_pre_attn_scalar must be positive', { file, found: String(scalar) });
  // the full layers' rope: rope_theta + rope_scaling, or rope_parameters (its full_attention entry when per layer type)
  spec.rope = { ...parseRope(c, spec.headDim, file, 1e6), attentionScale: scalar ** -0.5 };
  const n = spec.numLayers;
  // (transformers 5 saves the pattern as _sliding_window_pattern beside layer_types)
  const pattern = int(c, 'sliding_window_pattern', file, int(c, '_sliding_window_pattern', file, 6));
  if (!(pattern >= 1)) throw new ModelFormatError('sliding_window_pattern must be >= 1', { file, found: String(pattern) });
  const types = layerTypes(c, n, file) ?? Array.from({ length: n }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
  if (types.includes('sliding_attention')) {
    // kept even when the window reaches past max_position_embeddings: the window also says which layers take the local rope
    const w = int(c, 'sliding_window', file);
    if (!(w > 0)) throw new ModelFormatError('sliding_window must be positive', { file, found: String(w) });
    spec.layerWindows = types.map((t) => (t === 'sliding_attention' ? w : 0));
    const perType = c.rope_parameters as Record<string, unknown> | null | undefined;
    const local = perType && typeof perType === 'object' && typeof perType.sliding_attention === 'object' && perType.sliding_attention !== null
      ? parseRope({ ...c, rope_theta: c.rope_local_base_freq, rope_parameters: perType.sliding_attention }, spec.headDim, file)
      : { type: 'default' as const, theta: num(c, 'rope_local_base_freq', file) };
    spec.ropeLocal = { ...local, attentionScale: spec.rope.attentionScale };
  }
  return spec;
}

/** HF names of Gemma 3's text model under `prefix` ('model.' for Gemma3ForCausalLM). */
function gemma3Names(prefix: string, lmHead: string) {
  const l = `${prefix}layers.{i}.`;
  return {
    global: { 'embed_tokens.weight': `${prefix}embed_tokens.weight`, 'norm.weight': `${prefix}norm.weight`, 'lm_head.weight': lmHead },
    layer: {
      'input_norm.weight': `${l}input_layernorm.weight`,
      'attn_out_norm.weight': `${l}post_attention_layernorm.weight`,
      'post_norm.weight': `${l}pre_feedforward_layernorm.weight`,
      'mlp_out_norm.weight': `${l}post_feedforward_layernorm.weight`,
      'q_norm.weight': `${l}self_attn.q_norm.weight`,
      'k_norm.weight': `${l}self_attn.k_norm.weight`,
      ...Object.fromEntries(['q', 'k', 'v', 'o'].flatMap((p) => [[`${p}.weight`, `${l}self_attn.${p}_proj.weight`], [`${p}.bias`, `${l}self_attn.${p}_proj.bias`]])),
      ...Object.fromEntries(['gate', 'up', 'down'].map((p) => [`${p}.weight`, `${l}mlp.${p}_proj.weight`])),
    },
  };
}

function mapGemma3(ctx: WeightMapContext) {
  const has = (n: string) => ctx.weights.tensors.has(n);
  const prefix = PREFIXES.find((p) => has(`${p}embed_tokens.weight`));
  if (!prefix) {
    throw new ModelFormatError('missing tensor', { file: ctx.dir, tensor: PREFIXES.map((p) => `${p}embed_tokens.weight`).join(' or '), found: 'none of them' });
  }
  PREFIX.set(ctx.spec, prefix);
  const lmHead = ['lm_head.weight', 'language_model.lm_head.weight'].find(has) ?? 'lm_head.weight';
  // every norm multiplies by 1 + w: the loader adds the 1
  return mapByTable(ctx, gemma3Names(prefix, lmHead)).map((t) => (/norm\.weight$/.test(t.name) ? { ...t, add: 1 } : t));
}

/** AutoAWQ's Gemma groups: input_layernorm → q, k, v; v → o; pre_feedforward_layernorm → gate, up; up → down. */
function gemma3AwqGroups(spec: ModelSpec, layer: number): AwqScaleGroup[] {
  const p = `${PREFIX.get(spec) ?? (spec.hfArchitecture === 'Gemma3ForCausalLM' ? 'model.' : 'model.language_model.')}layers.${layer}`;
  return [
    { kind: 'norm', prev: `${p}.input_layernorm`, linears: [`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`] },
    { kind: 'linear', prev: `${p}.self_attn.v_proj`, linears: [`${p}.self_attn.o_proj`], kvGroupRepeat: spec.numHeads / spec.numKvHeads },
    { kind: 'norm', prev: `${p}.pre_feedforward_layernorm`, linears: [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`] },
    { kind: 'linear', prev: `${p}.mlp.up_proj`, linears: [`${p}.mlp.down_proj`] },
  ];
}

const QUANT_LIMITS = 'calibrate and auto_awq run in TypeScript (no native layer session)';

export const gemma3: ArchitectureDef = {
  key: 'gemma3',
  hfArchitectures: ['Gemma3ForCausalLM'],
  parseConfig: (cfg, file) => parseGemma3(cfg, file, 'Gemma3ForCausalLM'),
  mapWeights: mapGemma3,
  awqScaleGroups: gemma3AwqGroups,
  defaultChatTemplate: () => GEMMA_TEMPLATE,
  limits: QUANT_LIMITS,
};

/** gemma-3-4b / 12b / 27b: the same text model inside the image-text checkpoint (its vision tower is not loaded). */
export const gemma3Multimodal: ArchitectureDef = {
  ...gemma3,
  hfArchitectures: ['Gemma3ForConditionalGeneration'],
  parseConfig: (cfg, file) => parseGemma3(cfg, file, 'Gemma3ForConditionalGeneration'),
  limits: `text only: images are not supported; ${QUANT_LIMITS}`,
};
