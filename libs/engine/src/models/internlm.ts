// InternLMForCausalLM (InternLM v1): the Llama layout with q/k/v/o bias when config `bias` is true (its default).
import { INTERNLM_TEMPLATE } from '../chat-template/builtin';
import { LLAMA_STYLE_NAMES, bool, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const internlm: ArchitectureDef = {
  key: 'internlm',
  hfArchitectures: ['InternLMForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'internlm', 'InternLMForCausalLM');
    const bias = bool(cfg, 'bias', true);
    spec.qkvBias = bias;
    spec.oBias = bias;
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => INTERNLM_TEMPLATE,
};
