#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {
// out[i] = a[i] + b[i] (f32 add, one rounding); out may alias a or b.
void add_cuda(const half* a, const half* b, half* out, long long n, cudaStream_t s);
// y[r, c] += bias[c] for a [rows, cols] matrix with row stride ld (in place, e.g. after a cuBLAS GEMM).
void add_bias_cuda(half* y, int ld, const half* bias, int rows, int cols, cudaStream_t s);
}  // namespace lmfleet
