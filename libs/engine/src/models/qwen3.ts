// Qwen3ForCausalLM: the Llama layout plus a per-head RMSNorm of q and k before RoPE (`self_attn.q_norm` /
// `self_attn.k_norm`, [head_dim] each), no q/k/v bias by default (`attention_bias`), and a head_dim that config.json
// gives explicitly (numHeads × headDim may differ from hidden_size, e.g. Qwen3-0.6B: 16 × 128 over 1024).
import { QWEN2_TEMPLATE } from '../chat-template/builtin';
import { LLAMA_STYLE_NAMES, applySlidingWindow, bool, int, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

/** Qwen3's HF names: Llama's plus the per-head q / k norms (Qwen3-MoE shares them, models/moe.ts). */
export const QWEN3_NAMES = {
  global: LLAMA_STYLE_NAMES.global,
  layer: {
    ...LLAMA_STYLE_NAMES.layer,
    'q_norm.weight': 'model.layers.{i}.self_attn.q_norm.weight',
    'k_norm.weight': 'model.layers.{i}.self_attn.k_norm.weight',
  },
};

export const qwen3: ArchitectureDef = {
  key: 'qwen3',
  hfArchitectures: ['Qwen3ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'qwen3', 'Qwen3ForCausalLM');
    const bias = bool(cfg, 'attention_bias', false);
    spec.qkvBias = bias;
    spec.oBias = bias;
    spec.qkNorm = true;
    // use_sliding_window: the layers from max_window_layers on slide (transformers' default 28), or config.json's layer_types
    if (bool(cfg, 'use_sliding_window', false)) applySlidingWindow(spec, cfg, file, int(cfg, 'max_window_layers', file, 28));
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, QWEN3_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  // Qwen3 checkpoints ship their own template (with thinking); this ChatML one is only the fallback
  defaultChatTemplate: () => QWEN2_TEMPLATE,
};
