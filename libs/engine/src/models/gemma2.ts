// Gemma 2 (Gemma2ForCausalLM: gemma-2-2b / 9b / 27b and their -it). transformers' Gemma2Model is Gemma 3's layer without
// the q / k norms and without a local RoPE, plus soft-capping:
//   h0 = embed(ids) * sqrt(hidden_size)   (rounded to the weights' dtype; models/gemma.ts)
//   x += post_attention_layernorm(attn(input_layernorm(x)))       scores s = q.k * query_pre_attn_scalar^-0.5 become
//                                                                  c tanh(s / c), c = attn_logit_softcapping, before the softmax
//   x += post_feedforward_layernorm(down(gelu_tanh(gate(n)) * up(n))),  n = pre_feedforward_layernorm(x)
//   logits = d tanh(lm_head(norm(x)) / d),  d = final_logit_softcapping; lm_head tied to the (unscaled) embedding
// (1 + w) norms as in every Gemma (TensorSource.add; the canonical names of gemma.ts's sandwich table). One RoPE for every
// layer (rope_theta or rope_parameters, theta 10000 by default). Layers slide per layer_types, by default layer i iff
// (i + 1) % 2 != 0 (layer 0 sliding, layer 1 full, ...), over the last sliding_window positions (default 4096; null: no
// sliding layers). Either softcap may be null (off); absent, Gemma2Config's 50 / 30 apply. The engine takes them as
// attnLogitSoftcap / finalLogitSoftcap (the native decoder on both backends, BlockForward's attention op `softcap` and
// head). The activation is `hidden_activation` (Gemma2MLP reads it; default gelu_pytorch_tanh): the `hidden_act` the Hub
// configs carry beside it is ignored, as transformers ignores it. calibrate and auto_awq run these layers in TypeScript.
import { GEMMA_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { parseRope } from './common';
import {
  GEMMA_QUANT_LIMITS, gemmaActivation, gemmaAwqGroups, gemmaLayerTypes, gemmaLayerWindows, mapGemmaWeights, parseGemmaCommon, queryPreAttnScale,
} from './gemma';
import type { ArchitectureDef, HfConfig, ModelSpec } from './spec';

/** Gemma2Config's defaults (gemma-2-2b's shape): a config.json states what differs from them. */
const GEMMA2_DEFAULTS: HfConfig = {
  vocab_size: 256000, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 8192, rms_norm_eps: 1e-6, query_pre_attn_scalar: 256,
  sliding_window: 4096, attn_logit_softcapping: 50.0, final_logit_softcapping: 30.0, tie_word_embeddings: true,
};

/** A soft-capping field: a positive number, or undefined when null (off). */
function softcap(c: HfConfig, key: string, file: string): number | undefined {
  const v = c[key];
  if (v === null || v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
    throw new ModelFormatError(`${key} must be a positive number or null (off)`, { file, expected: 'a number > 0 or null', found: JSON.stringify(v) });
  }
  return v;
}

function parseGemma2(cfg: HfConfig, file: string): ModelSpec {
  const c = { ...GEMMA2_DEFAULTS, ...cfg };
  const act = gemmaActivation(c, 'hidden_activation', file, 'Gemma2MLP applies hidden_activation; hidden_act is ignored');
  const spec = parseGemmaCommon(c, file, 'gemma2', 'Gemma2ForCausalLM', act);
  spec.sandwichNorms = true;
  spec.rope = { ...parseRope(c, spec.headDim, file), attentionScale: queryPreAttnScale(c, file) };
  const attn = softcap(c, 'attn_logit_softcapping', file);
  const final = softcap(c, 'final_logit_softcapping', file);
  if (attn !== undefined) spec.attnLogitSoftcap = attn;
  if (final !== undefined) spec.finalLogitSoftcap = final;
  if (c.sliding_window !== null) {
    const types = gemmaLayerTypes(c, spec.numLayers, file, 2);
    if (types.includes('sliding_attention')) spec.layerWindows = gemmaLayerWindows(c, types, file);
  }
  return spec;
}

export const gemma2: ArchitectureDef = {
  key: 'gemma2',
  hfArchitectures: ['Gemma2ForCausalLM'],
  parseConfig: parseGemma2,
  mapWeights: (ctx) => mapGemmaWeights(ctx, 'model.'),
  awqScaleGroups: (spec, layer) => gemmaAwqGroups(spec, layer, 'model.'),
  defaultChatTemplate: () => GEMMA_TEMPLATE,
  limits: GEMMA_QUANT_LIMITS,
};
