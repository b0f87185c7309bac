#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lmfleet {
// AWQ clip search (ops/awq_clip_search.h for the math): device pointers; steps = the shrink steps tried.
void awq_clip_search_cuda(const float* w, const float* x, float* clip, float* err, int64_t rows, int64_t cols,
                          int64_t tokens, int bits, int group, int steps, int n_grid, cudaStream_t s);
}  // namespace lmfleet
