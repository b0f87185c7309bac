// Qwen2ForCausalLM: the Llama layout with q/k/v bias (no o bias); often tied embeddings on small models.
import { QWEN2_TEMPLATE } from '../chat-template/builtin';
import { LLAMA_STYLE_NAMES, applySlidingWindow, bool, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const qwen2: ArchitectureDef = {
  key: 'qwen2',
  hfArchitectures: ['Qwen2ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'qwen2', 'Qwen2ForCausalLM');
    spec.qkvBias = true;
    spec.oBias = false;
    // sliding-window layers (use_sliding_window): exact here while a session fits the window, so it caps sessions
    if (bool(cfg, 'use_sliding_window', false)) applySlidingWindow(spec, cfg, file);
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => QWEN2_TEMPLATE,
};
