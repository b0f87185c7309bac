// kv_store: writes the new tokens' K and V rows into the paged cache of one layer.
// Cache layout per layer: [num_blocks, block_size, kv_heads * head_dim]; slot = block * block_size + offset.
// quant_policy 8 / 4 (ops/kv_quant.h): the caches hold int8 / int4 rows (k_cache/v_cache are then byte buffers
// [num_slots, kv_heads, head_dim * bits / 8]) and each (slot, kv head) gets its (scale, zero) in k_param/v_param.
#pragma once
#include <cstdint>

namespace lmfleet {
struct kv_store_args {
  const float* k;  // [tokens, width]
  const float* v;  // [tokens, width]
  const int32_t* slots;  // [tokens] (host pointer); < 0: skip
  int64_t tokens, width;
  float* k_cache;  // quant_policy != 0: bytes (cast), see above
  float* v_cache;
  int64_t num_slots;
  int64_t ld = 0;  // floats between consecutive tokens' k (and v) rows (0: width)
  int quant_policy = 0;
  int64_t head_dim = 0;        // quant_policy != 0: kv_heads = width / head_dim
  float* k_param = nullptr;    // [num_slots, kv_heads, 2] (scale, zero)
  float* v_param = nullptr;
  const float* k_static = nullptr;  // [kv_heads, 2] calibrated (scale, zero); null: online per row
  const float* v_static = nullptr;
};
}  // namespace lmfleet
