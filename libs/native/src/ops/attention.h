// attention: causal, grouped-query attention of new tokens over the paged KV cache of one layer (the new
// tokens' K/V must already be stored, see kv_store). One op for prefill (q_len > 1, chunked or not) and
// decode (q_len = 1), for any mix of sequences in a batch; reads a float or a quantized (int8/int4) cache.
// Sequence s owns queries [q_start, q_start + q_len) and has ctx_len tokens in the cache; its query j sits
// at position ctx_len - q_len + j and attends to cache positions 0..that position (the last `window` of them when
// window > 0).
#pragma once
#include <cstdint>

namespace lmfleet {
struct attention_args {
  const float* q;  // [tokens, heads, head_dim]
  float* out;      // [tokens, heads, head_dim]
  const float* k_cache;  // [num_blocks, block_size, kv_heads, head_dim]
  const float* v_cache;
  int64_t num_blocks, block_size;
  const int32_t* block_tables;  // [num_seqs, max_blocks] (host pointer on cpu)
  int64_t max_blocks;
  const int32_t* seq_info;  // [num_seqs, 3]: q_start, q_len, ctx_len
  int64_t num_seqs;
  int64_t heads, kv_heads, head_dim;
  float scale;
  int64_t ldq = 0;  // floats between consecutive q rows (0: heads * head_dim), e.g. q inside a fused qkv
  // quant_policy 8 / 4 (ops/kv_quant.h): k_cache/v_cache hold int8 / int4 rows (bytes, cast) with (scale, zero)
  // per (slot, kv head) in k_param/v_param [num_blocks * block_size, kv_heads, 2]; dequantized as they are read.
  int quant_policy = 0;
  const float* k_param = nullptr;
  const float* v_param = nullptr;
  // Sliding-window attention (Mistral, Gemma 2/3's local layers): > 0, a query at position p sees keys (p - window, p]
  // only; 0: every key up to p.
  int64_t window = 0;
  // Gemma 2's attention logit soft-capping: > 0, each score x = scale q.k becomes softcap tanh(x / softcap)
  float softcap = 0.f;
};
}  // namespace lmfleet
