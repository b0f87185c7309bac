#include "cuda/check.cuh"
#include "ops/argmax.cuh"
#include "ops/sampling_common.cuh"

namespace lmfleet {

__global__ void argmax_kernel(const float* __restrict__ logits, int ld, int vocab, int* out, float* logprob) {
  __shared__ ArgMaxPair scratch[32];
  __shared__ float fscratch[32];
  const float* x = logits + (size_t)blockIdx.x * ld;
  ArgMaxPair best{-INFINITY, 0x7fffffff};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) best = better(best, ArgMaxPair{x[i], i});
  best = block_argmax(best, scratch);
  if (best.i == 0x7fffffff) best.i = 0;  // all NaN / -inf
  if (logprob) {
    const float lse = block_log_sum_exp(x, vocab, best.v, fscratch);
    if (threadIdx.x == 0) logprob[blockIdx.x] = -lse;
  }
  if (threadIdx.x == 0) out[blockIdx.x] = best.i;
}

void argmax_cuda(const float* logits, int ld, int vocab, int batch, int* out, float* logprob, cudaStream_t s) {
  if (batch <= 0) return;
  argmax_kernel<<<batch, 1024, 0, s>>>(logits, ld, vocab, out, logprob);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
