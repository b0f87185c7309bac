// embedding: out[t, :] = table[ids[t], :] * scale. ids are checked against vocab (E_INVALID_ARGUMENT).
#pragma once
#include <cstdint>

namespace lmfleet {
struct embedding_args {
  const int32_t* ids;  // host pointer on every backend (ids are validated on the host)
  int64_t n;
  const float* table;  // [vocab, hidden]
  int64_t vocab, hidden;
  float* out;  // [n, hidden]
  float scale = 1.f;  // Gemma's embedding scale (ModelConfig::embed_scale)
};
}  // namespace lmfleet
