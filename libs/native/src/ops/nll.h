// nll: out[r] = -log_softmax(logits[r])[targets[r]]  (the per-token loss behind perplexity).
#pragma once
#include <cstdint>

namespace lmfleet {
struct nll_args {
  const float* logits;  // [rows, vocab]
  const int32_t* targets;  // [rows] (host pointer; validated against vocab)
  float* out;  // [rows]
  int64_t rows, vocab;
};
}  // namespace lmfleet
