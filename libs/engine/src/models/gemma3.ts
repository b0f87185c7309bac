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
// only. The goldens test/fixtures/golden/gemma3* check all of it against transformers. What Gemma 1 / 2 / 3 share (the
// name table, the add-1 map, the AWQ groups, the activation check, the embedding scale) is in models/gemma.ts.
import { GEMMA_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { int, num, parseRope } from './common';
import {
  GEMMA_QUANT_LIMITS, gemmaActivation, gemmaAwqGroups, gemmaLayerTypes, gemmaLayerWindows, mapGemmaWeights, parseGemmaCommon, queryPreAttnScale,
} from './gemma';
import type { ArchitectureDef, HfConfig, ModelSpec, WeightMapContext } from './spec';

/** Gemma3TextConfig's defaults: gemma-3-4b's text_config states only what differs from them. */
const TEXT_DEFAULTS: HfConfig = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131072, rms_norm_eps: 1e-6, rope_theta: 1e6,
  rope_local_base_freq: 10000, query_pre_attn_scalar: 256, sliding_window: 4096, tie_word_embeddings: true,
};

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
  // (hidden_activation, or hidden_act when a config states only that)
  const act = gemmaActivation({ hidden_activation: c.hidden_activation ?? c.hidden_act }, 'hidden_activation', file);
  const spec = parseGemmaCommon(c, file, 'gemma3', hfArchitecture, act);
  spec.qkNorm = true;
  spec.sandwichNorms = true;
  // the full layers' rope: rope_theta + rope_scaling, or rope_parameters (its full_attention entry when per layer type)
  spec.rope = { ...parseRope(c, spec.headDim, file, 1e6), attentionScale: queryPreAttnScale(c, file) };
  // (transformers 5 saves the pattern as _sliding_window_pattern beside layer_types)
  const pattern = int(c, 'sliding_window_pattern', file, int(c, '_sliding_window_pattern', file, 6));
  const types = gemmaLayerTypes(c, spec.numLayers, file, pattern);
  if (types.includes('sliding_attention')) {
    // kept even when the window reaches past max_position_embeddings: the window also says which layers take the local rope
    spec.layerWindows = gemmaLayerWindows(c, types, file);
    const perType = c.rope_parameters as Record<string, unknown> | null | undefined;
    const local = perType && typeof perType === 'object' && typeof perType.sliding_attention === 'object' && perType.sliding_attention !== null
      ? parseRope({ ...c, rope_theta: c.rope_local_base_freq, rope_parameters: perType.sliding_attention }, spec.headDim, file)
      : { type: 'default' as const, theta: num(c, 'rope_local_base_freq', file) };
    spec.ropeLocal = { ...local, attentionScale: spec.rope.attentionScale };
  }
  return spec;
}

function mapGemma3(ctx: WeightMapContext) {
  const has = (n: string) => ctx.weights.tensors.has(n);
  const prefix = PREFIXES.find((p) => has(`${p}embed_tokens.weight`));
  if (!prefix) {
    throw new ModelFormatError('missing tensor', { file: ctx.dir, tensor: PREFIXES.map((p) => `${p}embed_tokens.weight`).join(' or '), found: 'none of them' });
  }
  PREFIX.set(ctx.spec, prefix);
  const lmHead = ['lm_head.weight', 'language_model.lm_head.weight'].find(has) ?? 'lm_head.weight';
  return mapGemmaWeights(ctx, prefix, lmHead);
}

/** AutoAWQ's Gemma groups (models/gemma.ts) under the checkpoint's text prefix. */
function gemma3AwqGroups(spec: ModelSpec, layer: number) {
  return gemmaAwqGroups(spec, layer, PREFIX.get(spec) ?? (spec.hfArchitecture === 'Gemma3ForCausalLM' ? 'model.' : 'model.language_model.'));
}

export const gemma3: ArchitectureDef = {
  key: 'gemma3',
  hfArchitectures: ['Gemma3ForCausalLM'],
  parseConfig: (cfg, file) => parseGemma3(cfg, file, 'Gemma3ForCausalLM'),
  mapWeights: mapGemma3,
  awqScaleGroups: gemma3AwqGroups,
  defaultChatTemplate: () => GEMMA_TEMPLATE,
  limits: GEMMA_QUANT_LIMITS,
};

/** gemma-3-4b / 12b / 27b: the same text model inside the image-text checkpoint (its vision tower is not loaded). */
export const gemma3Multimodal: ArchitectureDef = {
  ...gemma3,
  hfArchitectures: ['Gemma3ForConditionalGeneration'],
  parseConfig: (cfg, file) => parseGemma3(cfg, file, 'Gemma3ForConditionalGeneration'),
  limits: `text only: images are not supported; ${GEMMA_QUANT_LIMITS}`,
};
