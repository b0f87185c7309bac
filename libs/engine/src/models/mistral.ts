// MistralForCausalLM: the Llama layout (same tensor names, no biases), an explicit head_dim on some checkpoints
// (Mistral-Nemo: 32 heads x 128 over 5120), and `sliding_window` (Mistral 7B v0.1: 4096 of a 32k context) on every
// layer: sliding-window attention (spec.layerWindows).
import { LLAMA2_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { LLAMA_STYLE_NAMES, applySlidingWindow, bool, llamaStyleAwqGroups, mapByTable, parseCommon } from './common';
import type { ArchitectureDef } from './spec';

export const mistral: ArchitectureDef = {
  key: 'mistral',
  hfArchitectures: ['MistralForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'mistral', 'MistralForCausalLM');
    if (bool(cfg, 'attention_bias', false) || bool(cfg, 'mlp_bias', false)) {
      throw new ModelFormatError('Mistral with attention_bias / mlp_bias is not supported', { file, expected: 'no biases', found: 'bias: true' });
    }
    applySlidingWindow(spec, cfg, file);
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => LLAMA2_TEMPLATE,
};
