// log_softmax over the last dim: out[r, i] = x[r, i] - max_r - log(sum_j exp(x[r, j] - max_r)).
#pragma once
#include <cstdint>

namespace lmfleet {
struct log_softmax_args {
  const float* x;  // [rows, vocab]
  float* out;      // [rows, vocab] (may alias x)
  int64_t rows, vocab;
};
// max and log-sum-exp of one row (sum in double).
void row_logsumexp(const float* x, int64_t n, float* max_out, double* lse_out);
}  // namespace lmfleet
