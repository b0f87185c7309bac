// Qwen2ForCausalLM: the Llama layout with q/k/v bias (no o bias); often tied embeddings on small models.
import { QWEN2_TEMPLATE } from '../chat-template/builtin';
import { NotSupportedError } from '../errors';
import { LLAMA_STYLE_NAMES, bool, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const qwen2: ArchitectureDef = {
  key: 'qwen2',
  hfArchitectures: ['Qwen2ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'qwen2', 'Qwen2ForCausalLM');
    spec.qkvBias = true;
    spec.oBias = false;
    if (bool(cfg, 'use_sliding_window', false)) {
      throw new NotSupportedError(`${file}: use_sliding_window is not supported yet`);
    }
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => QWEN2_TEMPLATE,
};
