#pragma once
#include <cuda_runtime.h>

namespace lmfleet {
// y[r, :] = x[r, :] - max - log(sum(exp(x[r, :] - max))), rows of `vocab` f32 with row stride ld (x and y alike).
void log_softmax_cuda(const float* x, float* y, int ld, int rows, int vocab, cudaStream_t s);
}  // namespace lmfleet
