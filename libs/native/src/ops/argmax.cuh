#pragma once
#include <cuda_runtime.h>

namespace lmfleet {
// out[b] = the first index of the largest logits[b, :vocab] (torch.argmax's tie rule); logits row stride ld.
// logprob (nullable): log_softmax(logits[b])[out[b]].
void argmax_cuda(const float* logits, int ld, int vocab, int batch, int* out, float* logprob, cudaStream_t s);
}  // namespace lmfleet
