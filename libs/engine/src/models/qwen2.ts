// Qwen2ForCausalLM: the Llama layout with q/k/v bias (no o bias); often tied embeddings on small models.
import { QWEN2_TEMPLATE } from '../chat-template/builtin';
import { LLAMA_STYLE_NAMES, applySlidingWindow, bool, int, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const qwen2: ArchitectureDef = {
  key: 'qwen2',
  hfArchitectures: ['Qwen2ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'qwen2', 'Qwen2ForCausalLM');
    spec.qkvBias = true;
    spec.oBias = false;
    // use_sliding_window: the layers from max_window_layers on slide (transformers' default 28), or config.json's layer_types
    if (bool(cfg, 'use_sliding_window', false)) applySlidingWindow(spec, cfg, file, int(cfg, 'max_window_layers', file, 28));
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => QWEN2_TEMPLATE,
};
