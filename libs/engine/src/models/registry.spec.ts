import { UnsupportedArchitectureError } from '../errors';
import { getArchitecture, supportedArchitectures } from './registry';

describe('registry', () => {
  it('has one entry per architecture and names the supported ones for unknown classes', () => {
    expect(supportedArchitectures()).toEqual(['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Phi3ForCausalLM', 'SmolLM3ForCausalLM', 'GraniteForCausalLM', 'GemmaForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM', 'Gemma3ForConditionalGeneration', 'InternLMForCausalLM', 'InternLM2ForCausalLM', 'MixtralForCausalLM', 'Qwen3MoeForCausalLM']);
    expect(getArchitecture('Qwen2ForCausalLM').key).toBe('qwen2');
    let err: unknown;
    try {
      getArchitecture('GPT2LMHeadModel');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedArchitectureError);
    expect((err as Error).message).toMatch(/GPT2LMHeadModel.*supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, SmolLM3ForCausalLM, GraniteForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, InternLMForCausalLM, InternLM2ForCausalLM, MixtralForCausalLM, Qwen3MoeForCausalLM/);
  });
});
