#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace lmfleet {
// out[i, :] = table[ids[i], :] * scale for i < n; ids outside [0, vocab) give a zero row (ids are validated on submit).
void embedding_cuda(const int* ids, const half* table, half* out, int n, int hidden, int vocab, cudaStream_t s,
                    float scale = 1.f);
}  // namespace lmfleet
