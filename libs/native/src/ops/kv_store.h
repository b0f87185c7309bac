// kv_store: writes the new tokens' K and V rows into the paged cache of one layer.
// Cache layout per layer: [num_blocks, block_size, kv_heads * head_dim]; slot = block * block_size + offset.
#pragma once
#include <cstdint>

namespace lmfleet {
struct kv_store_args {
  const float* k;  // [tokens, width]
  const float* v;  // [tokens, width]
  const int32_t* slots;  // [tokens] (host pointer); < 0: skip
  int64_t tokens, width;
  float* k_cache;
  float* v_cache;
  int64_t num_slots;
  int64_t ld = 0;  // floats between consecutive tokens' k (and v) rows (0: width)
};
}  // namespace lmfleet
