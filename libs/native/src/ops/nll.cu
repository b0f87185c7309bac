#include "cuda/check.cuh"
#include "ops/nll.cuh"
#include "ops/sampling_common.cuh"

namespace lmfleet {

__global__ void nll_kernel(const float* __restrict__ logits, int ld, const int* __restrict__ targets,
                           float* __restrict__ nll, int vocab) {
  __shared__ float scr[32];
  const float* xr = logits + (size_t)blockIdx.x * ld;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) mx = fmaxf(mx, xr[i]);
  mx = block_max(mx, scr);
  const float lse = block_log_sum_exp(xr, vocab, mx, scr);
  if (threadIdx.x == 0) {
    const int t = targets[blockIdx.x];
    nll[blockIdx.x] = (t >= 0 && t < vocab) ? mx + lse - xr[t] : NAN;
  }
}

void nll_cuda(const float* logits, int ld, const int* targets, float* nll, int rows, int vocab, cudaStream_t s) {
  if (rows <= 0) return;
  nll_kernel<<<rows, 1024, 0, s>>>(logits, ld, targets, nll, vocab);
  LMF_CUDA_LAUNCHED();
}

}  // namespace lmfleet
