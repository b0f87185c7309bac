import { UnsupportedArchitectureError } from '../errors';
import { getArchitecture, supportedArchitectures } from './registry';

describe('registry', () => {
  it('has one entry per architecture and names the supported ones for unknown classes', () => {
    expect(supportedArchitectures()).toEqual(['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'InternLMForCausalLM', 'InternLM2ForCausalLM']);
    expect(getArchitecture('Qwen2ForCausalLM').key).toBe('qwen2');
    let err: unknown;
    try {
      getArchitecture('MistralForCausalLM');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedArchitectureError);
    expect((err as Error).message).toMatch(/MistralForCausalLM.*supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, InternLMForCausalLM, InternLM2ForCausalLM/);
  });
});
