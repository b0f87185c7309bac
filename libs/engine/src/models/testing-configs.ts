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


/** google/gemma-3-1b-it's config.json (Gemma3ForCausalLM, transformers 4.50's form). */
export const GEMMA3_1B_CONFIG = {
  architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null,
  bos_token_id: 2, cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912, max_position_embeddings: 32768,
  num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6,
  torch_dtype: 'bfloat16', use_cache: true, vocab_size: 262144,
};

/** google/gemma-3-4b-it's config.json (Gemma3ForConditionalGeneration): its text_config states only what differs from
 *  Gemma3TextConfig's defaults. */
export const GEMMA3_4B_CONFIG = {
  architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', boi_token_index: 255999, eoi_token_index: 256000,
  eos_token_id: [1, 106], image_token_index: 262144, initializer_range: 0.02, mm_tokens_per_image: 256,
  text_config: {
    hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34,
    rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024,
  },
  torch_dtype: 'bfloat16',
  vision_config: {
    hidden_size: 1152, image_size: 896, intermediate_size: 4304, model_type: 'siglip_vision_model', num_attention_heads: 16,
    num_hidden_layers: 27, patch_size: 14, vision_use_head: false,
  },
};

/** google/gemma-2-9b-it's config.json (Gemma2ForCausalLM, transformers 4.42's form: hidden_act beside hidden_activation). */
export const GEMMA2_9B_CONFIG = {
  architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: 50.0,
  bos_token_id: 2, cache_implementation: 'hybrid', eos_token_id: [1, 107], final_logit_softcapping: 30.0, head_dim: 256,
  hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: 3584, initializer_range: 0.02, intermediate_size: 14336,
  max_position_embeddings: 8192, num_attention_heads: 16, num_hidden_layers: 42, num_key_value_heads: 8, pad_token_id: 0,
  query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_theta: 10000.0, sliding_window: 4096, torch_dtype: 'bfloat16', use_cache: true,
  vocab_size: 256000,
};

/** gemma-2-27b's shape: head_dim 128 and query_pre_attn_scalar 144 (hidden / heads), not head_dim. */
export const GEMMA2_27B_CONFIG = {
  ...GEMMA2_9B_CONFIG, head_dim: 128, hidden_size: 4608, intermediate_size: 36864, num_attention_heads: 32, num_hidden_layers: 46,
  num_key_value_heads: 16, query_pre_attn_scalar: 144,
};

/** google/gemma-7b's config.json as first released (GemmaForCausalLM): hidden_act "gelu", no hidden_activation; MHA of
 *  16 heads of 256 over hidden 3072 (q 4096 wide). */
export const GEMMA_7B_CONFIG = {
  architectures: ['GemmaForCausalLM'], model_type: 'gemma', attention_bias: false, attention_dropout: 0.0, bos_token_id: 2, eos_token_id: 1,
  head_dim: 256, hidden_act: 'gelu', hidden_size: 3072, initializer_range: 0.02, intermediate_size: 24576, max_position_embeddings: 8192,
  num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 16, pad_token_id: 0, rms_norm_eps: 1e-6, rope_scaling: null,
  rope_theta: 10000.0, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 256000,
};

/** A gemma-1.1-2b-it style config.json: MQA (8 heads of 256 on 1 KV head over hidden 2048), the tanh GELU named in both
 *  hidden_act and hidden_activation. */
export const GEMMA_2B_CONFIG = {
  ...GEMMA_7B_CONFIG, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: 2048, intermediate_size: 16384,
  num_attention_heads: 8, num_hidden_layers: 18, num_key_value_heads: 1,
};
