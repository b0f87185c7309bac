// argmax: out[r] = index of the largest logit of row r (lowest index on ties).
#pragma once
#include <cstdint>

namespace lmfleet {
struct argmax_args {
  const float* logits;  // [rows, vocab]
  int64_t rows, vocab;
  int32_t* out;  // [rows]
};
inline int32_t argmax_row(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return (int32_t)best;
}
}  // namespace lmfleet
