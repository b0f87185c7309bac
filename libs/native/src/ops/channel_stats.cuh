#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {
// Per-column absmax / sum|x| (f64) / min / max of x [rows, cols], accumulated in place (ops/channel_stats.h):
// one thread per column, rows in order, so the f64 sums are bit-identical with the CPU reference. Device pointers.
void channel_stats_cuda(const float* x, int64_t rows, int64_t cols, float* absmax, double* abssum, float* min,
                        float* max, cudaStream_t s);
}  // namespace lmfleet
