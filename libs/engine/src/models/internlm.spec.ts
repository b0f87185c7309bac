import { internlm } from './internlm';
import { internlm2 } from './internlm2';
import { LLAMA2_CONFIG, F } from './testing-configs';

describe('internlm', () => {
  it('InternLM takes q/k/v/o bias from `bias` (default true); InternLM2 defaults to none', () => {
    const base = { ...LLAMA2_CONFIG, architectures: ['InternLMForCausalLM'] };
    expect(internlm.parseConfig(base, F)).toMatchObject({ qkvBias: true, oBias: true });
    expect(internlm.parseConfig({ ...base, bias: false }, F)).toMatchObject({ qkvBias: false, oBias: false });
    const i2 = internlm2.parseConfig({ ...base, architectures: ['InternLM2ForCausalLM'], num_key_value_heads: 8, rope_scaling: { type: 'dynamic', factor: 2.0 }, rope_theta: 1e6 }, F);
    expect(i2).toMatchObject({ qkvBias: false, oBias: false, numKvHeads: 8, rope: { type: 'dynamic', factor: 2, theta: 1e6 } });
  });
});
