// Gemma 1 (GemmaForCausalLM: gemma-2b / 7b, gemma-1.1, CodeGemma) and what the Gemma generations share (gemma2.ts and
// gemma3.ts import it). Shared: every RMSNorm multiplies by (1 + w), so each canonical norm carries `add: 1`
// (TensorSource.add: the engine reads 1 + w, auto_awq writes scaled norms back as (1 + w) / s - 1); the MLP is GeGLU
// with the tanh approximation; the embedding rows are multiplied by sqrt(hidden_size) rounded to the weights' dtype
// (transformers: `embed_scale.to(weight.dtype)`: 55.4256 becomes 55.5 in bf16 for a hidden size of 3072); the lm_head
// is tied by default; AWQ scales by AutoAWQ's four Gemma groups. Gemma 2 and 3 add the sandwich norms
// (post_attention_layernorm and post_feedforward_layernorm on the attention / MLP outputs before their residual adds,
// pre_feedforward_layernorm in front of the MLP), the softmax scale query_pre_attn_scalar^-0.5 and sliding layers.
// calibrate and auto_awq run all three in TypeScript (quant/block-forward.ts; quant/awq-session.ts nativeSessionRefusal:
// the native layer session runs SwiGLU layers only).
//
// Gemma 1 (transformers' GemmaModel): Llama's layer with (1 + w) norms (input_layernorm before attention,
// post_attention_layernorm before the MLP, no sandwich norms), GeGLU, the scaled embedding, head_dim from config.json
// (256 on the real models, wider than hidden / heads on gemma-7b), MQA on gemma-2b, softmax scale 1/sqrt(head_dim),
// one RoPE, no sliding window, no soft-capping. Its activation: current transformers' GemmaMLP is LlamaMLP's,
// ACT2FN[config.hidden_act] (GemmaConfig's default gelu_pytorch_tanh); `hidden_activation` is not read any more (the
// 2024 fallback that mapped hidden_act "gelu" to the tanh approximation when hidden_activation was null is gone). So a
// config.json with hidden_act "gelu" (gemma-2b / gemma-7b as first released) computes the exact, erf GELU there, and so
// does the engine (hiddenAct 'gelu'); gelu_pytorch_tanh selects the tanh approximation (hiddenAct 'gelu_tanh').
import { GEMMA_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { roundHalf } from '../io/half';
import type { TensorSource } from '../native';
import { bool, int, layerTypes, mapByTable, num, parseCommon, specDtype } from './common';
import type { ArchitectureDef, AwqScaleGroup, HfConfig, ModelSpec, WeightMapContext } from './spec';

/** transformers' names of the tanh-approximated GELU (ACT2FN: gelu_pytorch_tanh; gelu_tanh as some configs spell it). */
export const GELU_TANH = ['gelu_pytorch_tanh', 'gelu_tanh'];

export const GEMMA_QUANT_LIMITS = 'calibrate and auto_awq run in TypeScript (no native layer session)';

/**
 * The MLP activation a config names in `field` (the field each generation's MLP reads; absent or null: transformers'
 * default gelu_pytorch_tanh) as the engine's: the tanh approximation 'gelu_tanh', or 'gelu' (exact, erf) for ACT2FN's
 * "gelu"; anything else is refused naming the field, with `hint`.
 */
export function gemmaActivation(cfg: HfConfig, field: string, file: string, hint = ''): 'gelu_tanh' | 'gelu' {
  const act = cfg[field] ?? 'gelu_pytorch_tanh';
  if (act === 'gelu') return 'gelu';
  if (typeof act !== 'string' || !GELU_TANH.includes(act)) {
    throw new ModelFormatError(`unsupported ${field}${hint ? ` (${hint})` : ''}`, { file, expected: [...GELU_TANH, 'gelu'].join(' or '), found: JSON.stringify(act) });
  }
  return 'gelu_tanh';
}

/** sqrt(hidden_size) rounded to the checkpoint's dtype, as transformers multiplies the embedding rows by it. */
export function gemmaEmbedScale(hiddenSize: number, cfg: HfConfig): number {
  return roundHalf(Math.sqrt(hiddenSize), specDtype(cfg));
}

/**
 * The fields of a Gemma text config every generation reads alike (`cfg` already over its config class's defaults): the
 * common decoder fields, the MLP's activation `act` (gemmaActivation of the field the generation reads), tied embeddings unless
 * tie_word_embeddings says otherwise, attention_bias, the embedding scale. Bidirectional attention (EmbeddingGemma's
 * encoder, use_bidirectional_attention) is refused.
 */
export function parseGemmaCommon(cfg: HfConfig, file: string, arch: string, hfArchitecture: string, act: 'gelu_tanh' | 'gelu'): ModelSpec {
  if (bool(cfg, 'use_bidirectional_attention', false)) {
    throw new ModelFormatError('use_bidirectional_attention is not supported (EmbeddingGemma\'s encoder; the engine decodes causally)', { file, expected: 'false', found: 'true' });
  }
  const spec = parseCommon({ ...cfg, hidden_act: undefined }, file, arch, hfArchitecture);
  spec.hiddenAct = act;
  spec.tieWordEmbeddings = bool(cfg, 'tie_word_embeddings', true);
  spec.qkvBias = spec.oBias = bool(cfg, 'attention_bias', false);
  spec.embedScale = gemmaEmbedScale(spec.hiddenSize, cfg);
  return spec;
}

/** Gemma 2 / 3's softmax scale: query_pre_attn_scalar^-0.5 (in place of 1/sqrt(head_dim)). */
export function queryPreAttnScale(cfg: HfConfig, file: string): number {
  const scalar = num(cfg, 'query_pre_attn_scalar', file);
  if (!(scalar > 0)) throw new ModelFormatError('query_pre_attn_scalar must be positive', { file, found: String(scalar) });
  return scalar ** -0.5;
}

/**
 * Gemma 2 / 3's attention type per layer: config.json `layer_types`, else every layer slides but each pattern-th
 * (layer i slides iff (i + 1) % pattern != 0: Gemma 2's pattern 2 makes layer 0 sliding, layer 1 full, ...).
 */
export function gemmaLayerTypes(cfg: HfConfig, numLayers: number, file: string, pattern: number): string[] {
  if (!(pattern >= 1)) throw new ModelFormatError('sliding_window_pattern must be >= 1', { file, found: String(pattern) });
  return layerTypes(cfg, numLayers, file) ?? Array.from({ length: numLayers }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
}

/** config.json `sliding_window` as each layer's window (layerWindows: the sliding layers' window, 0 on the others). */
export function gemmaLayerWindows(cfg: HfConfig, types: readonly string[], file: string): number[] {
  const w = int(cfg, 'sliding_window', file);
  if (!(w > 0)) throw new ModelFormatError('sliding_window must be positive', { file, found: String(w) });
  return types.map((t) => (t === 'sliding_attention' ? w : 0));
}

/**
 * HF names of a Gemma text model under `prefix` ('model.' for the CausalLM classes). With sandwich norms (Gemma 2 / 3)
 * pre_feedforward_layernorm is the norm in front of the MLP (canonical post_norm) and post_attention_layernorm /
 * post_feedforward_layernorm the output norms (attn_out_norm / mlp_out_norm); without (Gemma 1) post_attention_layernorm
 * is the norm in front of the MLP, as in Llama. (q_norm / k_norm are read only when the spec has qkNorm: Gemma 3.)
 */
export function gemmaNames(prefix: string, lmHead: string, sandwich: boolean): { global: Record<string, string>; layer: Record<string, string> } {
  const l = `${prefix}layers.{i}.`;
  const norms: Record<string, string> = sandwich
    ? {
      'attn_out_norm.weight': `${l}post_attention_layernorm.weight`,
      'post_norm.weight': `${l}pre_feedforward_layernorm.weight`,
      'mlp_out_norm.weight': `${l}post_feedforward_layernorm.weight`,
    }
    : { 'post_norm.weight': `${l}post_attention_layernorm.weight` };
  return {
    global: { 'embed_tokens.weight': `${prefix}embed_tokens.weight`, 'norm.weight': `${prefix}norm.weight`, 'lm_head.weight': lmHead },
    layer: {
      'input_norm.weight': `${l}input_layernorm.weight`,
      ...norms,
      'q_norm.weight': `${l}self_attn.q_norm.weight`,
      'k_norm.weight': `${l}self_attn.k_norm.weight`,
      ...Object.fromEntries(['q', 'k', 'v', 'o'].flatMap((p) => [[`${p}.weight`, `${l}self_attn.${p}_proj.weight`], [`${p}.bias`, `${l}self_attn.${p}_proj.bias`]])),
      ...Object.fromEntries(['gate', 'up', 'down'].map((p) => [`${p}.weight`, `${l}mlp.${p}_proj.weight`])),
    },
  };
}

/** The canonical tensors of a Gemma text model under `prefix`, every norm with add 1 (the loader reads 1 + w). */
export function mapGemmaWeights(ctx: WeightMapContext, prefix: string, lmHead = 'lm_head.weight'): TensorSource[] {
  return mapByTable(ctx, gemmaNames(prefix, lmHead, !!ctx.spec.sandwichNorms)).map((t) => (/norm\.weight$/.test(t.name) ? { ...t, add: 1 } : t));
}

/**
 * AutoAWQ's Gemma / Gemma 2 groups of layer `layer` under `prefix`: input_layernorm → q, k, v; v → o; the norm in front
 * of the MLP (pre_feedforward_layernorm with sandwich norms, else post_attention_layernorm) → gate, up; up → down.
 */
export function gemmaAwqGroups(spec: ModelSpec, layer: number, prefix: string): AwqScaleGroup[] {
  const p = `${prefix}layers.${layer}`;
  const mlpNorm = spec.sandwichNorms ? 'pre_feedforward_layernorm' : 'post_attention_layernorm';
  return [
    { kind: 'norm', prev: `${p}.input_layernorm`, linears: [`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`] },
    { kind: 'linear', prev: `${p}.self_attn.v_proj`, linears: [`${p}.self_attn.o_proj`], kvGroupRepeat: spec.numHeads / spec.numKvHeads },
    { kind: 'norm', prev: `${p}.${mlpNorm}`, linears: [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`] },
    { kind: 'linear', prev: `${p}.mlp.up_proj`, linears: [`${p}.mlp.down_proj`] },
  ];
}

/** GemmaConfig's defaults (gemma-7b's shape): a config.json states what differs from them. */
const GEMMA_DEFAULTS: HfConfig = {
  vocab_size: 256000, hidden_size: 3072, intermediate_size: 24576, num_hidden_layers: 28, num_attention_heads: 16,
  num_key_value_heads: 16, head_dim: 256, max_position_embeddings: 8192, rms_norm_eps: 1e-6, tie_word_embeddings: true,
};

function parseGemma(cfg: HfConfig, file: string): ModelSpec {
  const c = { ...GEMMA_DEFAULTS, ...cfg };
  // (current transformers applies hidden_act and ignores hidden_activation: see the top of this file)
  const ignored = typeof c.hidden_activation === 'string' && c.hidden_activation !== c.hidden_act ? `; hidden_activation ${JSON.stringify(c.hidden_activation)} is ignored` : '';
  const act = gemmaActivation(c, 'hidden_act', file, `transformers' GemmaMLP applies hidden_act${ignored}`);
  // (rope_theta / rope_scaling or rope_parameters, theta 10000 by default; the softmax scale stays 1/sqrt(head_dim))
  return parseGemmaCommon(c, file, 'gemma', 'GemmaForCausalLM', act);
}

export const gemma: ArchitectureDef = {
  key: 'gemma',
  hfArchitectures: ['GemmaForCausalLM'],
  parseConfig: parseGemma,
  mapWeights: (ctx) => mapGemmaWeights(ctx, 'model.'),
  awqScaleGroups: (spec, layer) => gemmaAwqGroups(spec, layer, 'model.'),
  defaultChatTemplate: () => GEMMA_TEMPLATE,
  limits: GEMMA_QUANT_LIMITS,
};
