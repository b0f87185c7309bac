#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {
// out[c] += sum_r (a[r, c] - b[r, c])^2 in f64, rows in order (ops/sq_err.h); device pointers.
void sq_err_cuda(const float* a, const float* b, int64_t rows, int64_t cols, double* out, cudaStream_t s);
}  // namespace lmfleet
