// Sum of squared differences per column, accumulated: out[c] += sum_r (a[r, c] - b[r, c])^2 in f64, rows in order
// (CPU and CUDA give the same bits, as channel_stats). The AWQ session's loss of a candidate: the MSE of a block
// output against the reference is sum_c out[c] / (rows * cols).
#pragma once
#include <cstdint>

namespace lmfleet {

struct sq_err_args {
  const float* a;  // [rows, cols]
  const float* b;  // [rows, cols]
  int64_t rows, cols;
  double* out;  // [cols], in/out
};

}  // namespace lmfleet
