// HF config.json examples shared by the architecture specs.
export const F = 'config.json';

export const LLAMA2_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008,
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, rms_norm_eps: 1e-5, vocab_size: 32000,
  max_position_embeddings: 4096, rope_theta: 10000.0, rope_scaling: null, tie_word_embeddings: false, torch_dtype: 'float16',
  hidden_act: 'silu',
};
export const LLAMA31_CONFIG = {
  ...LLAMA2_CONFIG, num_key_value_heads: 8, vocab_size: 128256, intermediate_size: 14336, max_position_embeddings: 131072,
  rope_theta: 500000.0, torch_dtype: 'bfloat16',
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
};

