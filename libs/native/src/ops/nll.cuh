#pragma once
#include <cuda_runtime.h>

namespace lmfleet {
// nll[r] = -log_softmax(logits[r, :vocab])[targets[r]] (f32 logits, row stride ld); targets outside the vocab
// give NaN. For scoreTokens: row t holds the logits after token t and targets[t] = ids[t + 1].
void nll_cuda(const float* logits, int ld, const int* targets, float* nll, int rows, int vocab, cudaStream_t s);
}  // namespace lmfleet
