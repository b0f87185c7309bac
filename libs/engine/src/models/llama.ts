// LlamaForCausalLM (Llama 1/2/3 and the many checkpoints that reuse its layout). RoPE scaling: linear, dynamic,
// llama3. Optional attention bias (`attention_bias`); `mlp_bias` has no canonical tensor and is refused.
import { LLAMA2_TEMPLATE, LLAMA3_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { LLAMA_STYLE_NAMES, bool, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const llama: ArchitectureDef = {
  key: 'llama',
  hfArchitectures: ['LlamaForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'llama', 'LlamaForCausalLM');
    const bias = bool(cfg, 'attention_bias', false);
    spec.qkvBias = bias;
    spec.oBias = bias;
    if (bool(cfg, 'mlp_bias', false)) {
      throw new ModelFormatError('mlp_bias is not supported', { file, expected: 'mlp_bias: false', found: 'true' });
    }
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: (spec) => (spec.vocabSize >= 128000 ? LLAMA3_TEMPLATE : LLAMA2_TEMPLATE),
};
