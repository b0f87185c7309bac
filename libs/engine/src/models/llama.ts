// LlamaForCausalLM (Llama 1/2/3 and the many checkpoints that reuse its layout). RoPE scaling: linear, dynamic,
// llama3. Optional attention bias (`attention_bias`); `mlp_bias` has no canonical tensor and is refused.
import { LLAMA2_TEMPLATE, LLAMA3_TEMPLATE } from '../chat-template/builtin';
import { LLAMA_STYLE_NAMES, applyLlamaBiases, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const llama: ArchitectureDef = {
  key: 'llama',
  hfArchitectures: ['LlamaForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'llama', 'LlamaForCausalLM');
    applyLlamaBiases(spec, cfg, file);
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: (spec) => (spec.vocabSize >= 128000 ? LLAMA3_TEMPLATE : LLAMA2_TEMPLATE),
};
